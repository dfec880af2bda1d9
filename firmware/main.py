"""Entry point on the board: build the hardware layer from the pin plan and run the node forever."""

from hal import Hardware
from node import LineNode

# Pin plan of the reference board (ESP32-WROOM + MAX3485): see docs/firmware.md.
PULSE_PINS = (32, 33, 25, 26, 27, 14, 12, 13)
ADC_PINS = (34, 35, 36)


def main():
    hardware = Hardware(PULSE_PINS, ADC_PINS, uart_id=2, tx=17, rx=16, de_pin=4)
    LineNode(hardware).run()


main()
