"""A simulated meter line served on a real port: one end of a socat PTY pair, or TCP as a serial-to-Ethernet
converter would. ``feed`` takes the master's bytes and returns the meters' answer (the IEC 62056-21 and M-Bus
simulators' ``SimulatedLine.feed``)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable

import serial

Feed = Callable[[bytes], bytes]


def serve_serial(device: str, feed: Feed, stop: threading.Event, **settings) -> threading.Thread:
    """Answer on a serial device until ``stop`` is set (or the other end goes away)."""
    port = serial.serial_for_url(device, timeout=0.02, **settings)

    def run() -> None:
        with port:
            while not stop.is_set():
                try:
                    data = port.read(port.in_waiting or 1)
                except serial.SerialException:  # socat ended: so does the line
                    return
                if data and (answer := feed(data)):
                    port.write(answer)

    thread = threading.Thread(target=run, name=f"meter-line-{device}", daemon=True)
    thread.start()
    return thread


def serve_tcp(host: str, port: int, feed: Feed) -> socketserver.ThreadingTCPServer:
    """Answer on TCP; ``shutdown()`` and ``server_close()`` to stop."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection: socket.socket = self.request
            while data := connection.recv(4096):
                if answer := feed(data):
                    connection.sendall(answer)

    server = socketserver.ThreadingTCPServer((host, port), Handler, bind_and_activate=False)
    server.allow_reuse_address = True
    server.daemon_threads = True
    server.server_bind()
    server.server_activate()
    threading.Thread(target=server.serve_forever, name="meter-line-tcp", daemon=True).start()
    return server
