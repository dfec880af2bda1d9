"""Ingestion: verify a gateway's batch, check its place in the chain, store it whole or not at all.

Idempotent by (gateway, seq): the same batch twice changes nothing; the same seq with other bytes is refused and
raised as a security alert. A gap is accepted and recorded until filled. The steps: ``rows.verified_rows``
(signature, parse, rows) → ``chain.prepare_batch`` → ``chain.store_batch`` (chain check, write), alone in its
transaction (PostgreSQL) or in a group (``group_writer.BatchWriter``, SQLite).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cloud.ingest.chain import prepare_batch, record_refusal, store_alone
from cloud.ingest.errors import IngestError, IngestResult
from cloud.ingest.group_writer import BatchWriter


def ingest_batch(db: Session, gateway_code: str, body: bytes, signature: bytes,
                 writer: BatchWriter | None = None) -> IngestResult:
    """Verify, store and commit one batch: all of it or, on any error, nothing.

    On SQLite ``writer`` does it (batches arriving together are verified and written by one thread and share
    one commit); without one (PostgreSQL) it happens here, in ``db``'s own transaction.
    """
    if writer is not None:
        return writer.submit(gateway_code, body, signature)
    try:
        prepared = prepare_batch(db, gateway_code, body, signature)
    except IngestError as exc:
        if exc.event is not None:
            record_refusal(db, exc.event)
        raise
    db.rollback()  # the reads are done: hold no snapshot while writing
    return store_alone(db, prepared)
