"""DLMS/COSEM electricity meters to read without a meter: a line of simulated meters speaking HDLC
(IEC 62056-46) — SNRM/UA, I-frames (segmented, with RR, when an answer outgrows 128 bytes), DISC — and the
COSEM application layer — AARQ/AARE with the lowest security for the public client and low-level security
(the password checked, a wrong one refused with the Green Book's diagnostic) for the reader client, GET normal
and GET-with-list of the meter's objects, RLRQ — on a serial device (one end of a socat PTY pair) or on TCP.
APDUs and frames are encoded by dlms-cosem's own classes. A meter can be told to fail the ways real ones do:
stay silent, stop half-way through a frame, or send frames whose FCS is wrong.

    python -m edge.dlms_simulator --tcp 127.0.0.1:7003     # a three-phase meter at HDLC address 1/17
"""

from __future__ import annotations

import argparse
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dlms_cosem import dlms_data, enumerations
from dlms_cosem.crc import CRCCCITT
from dlms_cosem.hdlc import frames
from dlms_cosem.hdlc.address import HdlcAddress
from dlms_cosem.protocol import acse, xdlms

from edge import line_server

FAULTS = ("silent", "truncate", "bad_fcs")
FCS = CRCCCITT()
LLC_RESPONSE = b"\xe6\xe7\x00"
# The UA's HDLC parameters (IEC 62056-46 6.4.4.4.3.2): information field 128 bytes each way, window 1.
UA_PARAMETERS = bytes.fromhex("8180140502008006020080070400000001080400000001")
MAX_INFORMATION = 128
WH, VOLT, NO_UNIT = 30, 35, 255
Answer = dlms_data.AbstractDlmsData | enumerations.DataAccessResult


@dataclass
class CosemObject:
    """One object of the meter: its interface class, its value (attribute 2) and, for a register, the
    scaler and unit of attribute 3; ``public`` when the lowest-security association may read it."""

    class_id: int
    value: Callable[[], dlms_data.AbstractDlmsData] | dlms_data.AbstractDlmsData
    scaler: int = 0
    unit: int = NO_UNIT
    public: bool = True


@dataclass
class SimulatedDlmsMeter:
    """One meter on the line: its HDLC address (logical device / physical), its LLS password, its objects."""

    physical: int = 17
    logical: int = 1
    password: str = ""  # low-level security for the reader client; empty: only the public client is served
    objects: dict[str, CosemObject] = field(default_factory=dict)  # OBIS "A.B.C.D.E.F" → object
    fault: str = ""  # one of FAULTS, or none
    with_list: bool = True  # GET-with-list in its conformance (multiple-references)
    public_client: int = 16
    reader_client: int = 32
    max_pdu: int = 500

    def hdlc_address(self) -> HdlcAddress:
        return HdlcAddress(self.logical, self.physical or None, "server", self.physical > 127)

    def conformance(self) -> xdlms.Conformance:
        # The Green Book's example AARE offers exactly this (0x00501F) — with multiple-references when asked.
        return xdlms.Conformance(
            priority_management_supported=True, block_transfer_with_get_or_read=True, get=True, set=True,
            selective_access=True, event_notification=True, action=True, multiple_references=self.with_list)

    def attribute(self, request: CosemAttributeRequest, lls: bool) -> Answer:
        code = ".".join(str(group) for group in request.obis)
        found = self.objects.get(code)
        if found is None:
            return enumerations.DataAccessResult.OBJECT_UNDEFINED
        if found.class_id != request.class_id:
            return enumerations.DataAccessResult.OBJECT_CLASS_INCONSISTENT
        if request.attribute == 1:
            return dlms_data.OctetStringData(bytes(request.obis))
        if not (found.public or lls):
            return enumerations.DataAccessResult.READ_WRITE_DENIED
        if request.attribute == 2:
            return found.value() if callable(found.value) else found.value
        if request.attribute == 3 and found.class_id in (3, 4):
            return dlms_data.DataStructure([dlms_data.IntegerData(found.scaler), dlms_data.EnumData(found.unit)])
        return enumerations.DataAccessResult.OBJECT_UNAVAILABLE


@dataclass(frozen=True)
class CosemAttributeRequest:
    class_id: int
    obis: tuple[int, ...]
    attribute: int


@dataclass
class Link:
    """The HDLC link and the association of one meter with the client that opened it."""

    client: int
    received: int = 0  # N(R): I-frames taken from the client
    sent: int = 0  # N(S): I-frames sent to it
    association: str = ""  # "", "lowest" or "lls"
    incoming: bytes = b""  # a segmented request's parts so far
    outgoing: list[bytes] = field(default_factory=list)  # an answer's segments still to send (after an RR)


class SimulatedDlmsLine:
    """The conversation on one line: the client's frames in, the addressed meter's frames out."""

    def __init__(self, meters: list[SimulatedDlmsMeter]):
        self.meters = meters
        self.links: dict[bytes, Link] = {}
        self.buffer = b""
        self.lock = threading.Lock()

    def feed(self, data: bytes) -> bytes:
        with self.lock:
            self.buffer += data
            answer = b""
            while (frame := self._next_frame()) is not None:
                answer += self._frame(frame)
            return answer

    def _next_frame(self) -> bytes | None:
        while self.buffer and self.buffer[0] != 0x7E:
            self.buffer = self.buffer[1:]  # line noise
        while len(self.buffer) >= 2 and self.buffer[1] == 0x7E:
            self.buffer = self.buffer[1:]  # back-to-back flags
        if len(self.buffer) < 3:
            return None
        length = ((self.buffer[1] & 0x07) << 8) | self.buffer[2]
        if len(self.buffer) < length + 2:
            return None
        frame, self.buffer = self.buffer[:length + 2], self.buffer[length + 2:]
        return frame if frame[-1] == 0x7E else b""

    def _frame(self, frame: bytes) -> bytes:
        if not frame or FCS.calculate_for(frame[1:-3]) != frame[-3:-1]:
            return b""  # a damaged request is not answered: the client's timeout is the error
        body = frame[1:-1]
        end = 2
        while not body[end] & 1:
            end += 1
        destination, client_byte, control = bytes(body[2:end + 1]), body[end + 1], body[end + 2]
        meter = next((m for m in self.meters if m.hdlc_address().to_bytes() == destination), None)
        if meter is None or meter.fault == "silent":
            return b""
        client = HdlcAddress(client_byte >> 1, None, "client")
        server = meter.hdlc_address()
        if control & 0xEF == 0x83:  # SNRM: a new link, whatever was before
            self.links[destination] = Link(client_byte >> 1)
            return frames.UnNumberedAcknowledgmentFrame(client, server, UA_PARAMETERS).to_bytes()
        link = self.links.get(destination)
        if link is None or link.client != client_byte >> 1:
            return self._dm(client, server)
        if control & 0xEF == 0x43:  # DISC: the link and its association end
            del self.links[destination]
            return frames.UnNumberedAcknowledgmentFrame(client, server).to_bytes()
        if control & 0x0F == 0x01:  # RR: the next segment of a long answer
            return self._segment(meter, link, client, server)
        if control & 0x01:
            return b""
        link.received = (link.received + 1) % 8
        information = bytes(body[end + 5:-2])
        if body[0] & 0x08:  # a segmented request: take the part, ask for the next
            link.incoming += information
            return frames.ReceiveReadyFrame(client, server, receive_sequence_number=link.received).to_bytes()
        request, link.incoming = link.incoming + information, b""
        if not request.startswith(b"\xe6\xe6\x00"):
            return b""
        apdu = self._apdu(meter, link, request[3:])
        if not apdu:
            return b""
        data = LLC_RESPONSE + apdu
        link.outgoing = [data[i:i + MAX_INFORMATION] for i in range(0, len(data), MAX_INFORMATION)]
        return self._segment(meter, link, client, server)

    @staticmethod
    def _dm(client: HdlcAddress, server: HdlcAddress) -> bytes:
        """DM (disconnected mode): a frame for a link that was never opened."""
        addresses = client.to_bytes() + server.to_bytes() + bytes([0x1F])
        header = bytes([0xA0, 2 + len(addresses) + 2]) + addresses
        return b"\x7e" + header + FCS.calculate_for(header) + b"\x7e"

    def _segment(self, meter: SimulatedDlmsMeter, link: Link, client: HdlcAddress, server: HdlcAddress) -> bytes:
        if not link.outgoing:
            return b""
        part = link.outgoing.pop(0)
        frame = frames.InformationFrame(client, server, part, send_sequence_number=link.sent,
                                        receive_sequence_number=link.received, segmented=bool(link.outgoing),
                                        final=True).to_bytes()
        link.sent = (link.sent + 1) % 8
        if meter.fault == "bad_fcs":
            frame = frame[:-2] + bytes([frame[-2] ^ 0x5A, 0x7E])
        if meter.fault == "truncate":
            frame = frame[: len(frame) // 2]
        return frame

    def _apdu(self, meter: SimulatedDlmsMeter, link: Link, apdu: bytes) -> bytes:
        if apdu[0] == acse.ApplicationAssociationRequest.TAG:
            return self._associate(meter, link, acse.ApplicationAssociationRequest.from_bytes(apdu))
        if apdu[0] == acse.ReleaseRequest.TAG:
            link.association = ""
            return acse.ReleaseResponse(reason=enumerations.ReleaseResponseReason.NORMAL).to_bytes()
        if apdu[0] != xdlms.GetRequestNormal.TAG:
            return xdlms.ExceptionResponse(enumerations.StateException.SERVICE_UNKNOWN,
                                           enumerations.ServiceException.SERVICE_NOT_SUPPORTED).to_bytes()
        if not link.association:
            return xdlms.ExceptionResponse(enumerations.StateException.SERVICE_NOT_ALLOWED,
                                           enumerations.ServiceException.OPERATION_NOT_POSSIBLE).to_bytes()
        request = xdlms.GetRequestFactory.from_bytes(apdu)
        lls = link.association == "lls"
        if isinstance(request, xdlms.GetRequestWithList):
            answers = [meter.attribute(requested(item.attribute), lls) for item in request.cosem_attributes_with_selection]
            return xdlms.GetResponseWithList(answers, request.invoke_id_and_priority).to_bytes()
        if not isinstance(request, xdlms.GetRequestNormal):
            return xdlms.GetResponseNormalWithError(enumerations.DataAccessResult.NO_LONG_GET_IN_PROGRESS,
                                                    request.invoke_id_and_priority).to_bytes()
        answer = meter.attribute(requested(request.cosem_attribute), lls)
        if isinstance(answer, enumerations.DataAccessResult):
            return xdlms.GetResponseNormalWithError(answer, request.invoke_id_and_priority).to_bytes()
        # Get-Response-Normal by hand: dlms-cosem 25.1's GetResponseNormal.to_bytes appends bytes to a bytearray.
        return bytes([0xC4, 0x01]) + request.invoke_id_and_priority.to_bytes() + b"\x00" + answer.to_bytes()

    def _associate(self, meter: SimulatedDlmsMeter, link: Link, aarq: acse.ApplicationAssociationRequest) -> bytes:
        diagnostics = enumerations.AcseServiceUserDiagnostics
        mechanism = aarq.authentication
        if link.client == meter.public_client:
            link.association, outcome = "lowest", diagnostics.NULL
        elif link.client != meter.reader_client or not meter.password:
            outcome = diagnostics.NO_REASON_GIVEN
        elif mechanism != enumerations.AuthenticationMechanism.LLS:
            outcome = diagnostics.AUTHENTICATION_MECHANISM_NAME_REQUIRED
        elif bytes(aarq.authentication_value or b"") != meter.password.encode("latin-1"):
            outcome = diagnostics.AUTHENTICATION_FAILED
        else:
            link.association, outcome = "lls", diagnostics.NULL
        accepted = outcome is diagnostics.NULL
        return acse.ApplicationAssociationResponse(
            result=enumerations.AssociationResult.ACCEPTED if accepted
            else enumerations.AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostics=outcome,
            authentication=enumerations.AuthenticationMechanism.LLS if link.association == "lls" else None,
            user_information=acse.UserInformation(content=xdlms.InitiateResponse(
                negotiated_conformance=meter.conformance(), server_max_receive_pdu_size=meter.max_pdu)),
        ).to_bytes()


def requested(attribute) -> CosemAttributeRequest:
    return CosemAttributeRequest(int(attribute.interface), tuple(attribute.instance.to_bytes()), attribute.attribute)


def register(value: int, scaler: int, unit: int, public: bool = True) -> CosemObject:
    """A class 3 register holding an unsigned 32-bit value (double-long-unsigned), as SPODES meters keep energy."""
    return CosemObject(3, dlms_data.DoubleLongUnsignedData(value), scaler, unit, public)


def voltage(decivolts: int, public: bool = True) -> CosemObject:
    return CosemObject(3, dlms_data.UnsignedLongData(decivolts), -1, VOLT, public)


def electricity_meter(physical: int = 17, password: str = "", fault: str = "", public_registers: bool = True,
                      with_list: bool = True, serial_number: str = "00123456") -> SimulatedDlmsMeter:
    """A three-phase time-of-use meter: 12 345.67 kWh imported (8 000.012 in T1, 4 345.658 in T2), nothing
    exported, 229.8 / 231.0 / 228.4 V. Its total is kept with scaler 1 (tens of Wh), its zones with 0 (Wh).
    ``public_registers=False`` keeps the registers from the public client, as SPODES meters do."""
    public = public_registers
    return SimulatedDlmsMeter(
        physical=physical, password=password, fault=fault, with_list=with_list, objects={
            "0.0.96.1.0.255": CosemObject(1, dlms_data.OctetStringData(serial_number.encode("ascii"))),
            "0.0.42.0.0.255": CosemObject(1, dlms_data.OctetStringData(b"BLS" + serial_number.encode().rjust(13, b"0"))),
            "1.0.1.8.0.255": register(1234567, 1, WH, public),
            "1.0.1.8.1.255": register(8000012, 0, WH, public),
            "1.0.1.8.2.255": register(4345658, 0, WH, public),
            "1.0.2.8.0.255": register(0, 0, WH, public),
            "1.0.32.7.0.255": voltage(2298, public),
            "1.0.52.7.0.255": voltage(2310, public),
            "1.0.72.7.0.255": voltage(2284, public),
        })


def serve_serial(device: str, line, stop: threading.Event) -> threading.Thread:
    """Answer on a serial device (one end of a socat PTY pair) until ``stop`` is set."""
    return line_server.serve_serial(device, line.feed, stop, baudrate=9600)


def serve_tcp(host: str, port: int, line) -> socketserver.ThreadingTCPServer:
    """Answer on TCP, as a serial-to-Ethernet converter in front of the line would; ``shutdown()`` to stop."""
    return line_server.serve_tcp(host, port, line.feed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", help="a serial device, e.g. one end of `socat pty,link=… pty,link=…`")
    where.add_argument("--tcp", help="host:port to listen on")
    parser.add_argument("--password", default="12345678", help="the LLS password of the reader client (32)")
    args = parser.parse_args()
    line = SimulatedDlmsLine([electricity_meter(password=args.password)])
    if args.serial:
        serve_serial(args.serial, line, threading.Event()).join()
    else:
        host, _, port = args.tcp.rpartition(":")
        serve_tcp(host, int(port), line)
        threading.Event().wait()


if __name__ == "__main__":
    main()
