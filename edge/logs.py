"""Structured logs: JSON lines in production (journald, Loki), readable text in a terminal.

Context (gateway, bus, meter) rides along as ``extra`` fields and appears in both forms.
"""

from __future__ import annotations

import json
import logging
import sys

CONTEXT = ("gateway", "bus", "meter", "seq")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                 "logger": record.name, "message": record.getMessage()}
        entry.update({key: getattr(record, key) for key in CONTEXT if hasattr(record, key)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT if hasattr(record, key))
        return f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}" + (
            f"  [{context}]" if context else "")


def configure(level: str = "INFO", json_lines: bool | None = None) -> None:
    """JSON when stderr is not a terminal (a service), text when it is (a person)."""
    handler = logging.StreamHandler(sys.stderr)
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # it logs every timeout; we log availability once
