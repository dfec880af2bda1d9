"""A stand-in for MicroPython's ``machine`` module: what umodbus and the node's hardware layer touch."""


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2
    IRQ_FALLING = 4

    def __init__(self, number, mode=None, pull=None):
        self.number = number
        self.level = 1
        self.handler = None

    def on(self):
        self.level = 1

    def off(self):
        self.level = 0

    def value(self, level=None):
        if level is None:
            return self.level
        self.level = level

    def irq(self, trigger=None, handler=None):
        self.handler = handler


class UART:
    """A UART whose receive buffer the test fills and whose transmit buffer the test empties."""

    instances = []

    def __init__(self, uart_id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None):
        self.baudrate = baudrate
        self.rx_buffer = bytearray()
        self.tx_buffer = bytearray()
        UART.instances.append(self)

    def any(self):
        return len(self.rx_buffer)

    def read(self, count=None):
        if not self.rx_buffer:
            return None
        count = len(self.rx_buffer) if count is None else count
        data = bytes(self.rx_buffer[:count])
        self.rx_buffer = self.rx_buffer[count:]
        return data

    def write(self, data):
        self.tx_buffer.extend(data)
        return len(data)

    def feed(self, data):
        self.rx_buffer.extend(data)

    def take(self):
        data = bytes(self.tx_buffer)
        self.tx_buffer = bytearray()
        return data
