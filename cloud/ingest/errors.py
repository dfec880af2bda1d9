"""What ingestion answers: a stored or duplicate batch, or a refusal with its status, code, field and reason."""

from __future__ import annotations

from dataclasses import dataclass


class IngestError(Exception):
    """A refused batch: HTTP status, a machine code, the field and a human reason; ``event``, the security
    event the org admin must see (a revoked gateway, a forged signature), for the caller to record."""

    def __init__(self, status: int, code: str, message: str, field: str = "", event: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.event = event

    def as_json(self) -> dict:
        return {"error": self.code, "message": self.message, **({"field": self.field} if self.field else {})}


@dataclass(frozen=True)
class IngestResult:
    status: str  # stored | duplicate
    seq: int
    hash: str
    gap_before: bool = False
