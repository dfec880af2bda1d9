"""The uplink: forward sealed batches to the cloud over HTTP, retrying what is transient.

At-least-once: a batch is marked sent only after the cloud answered 2xx (stored or
duplicate). 429/5xx/network errors are retried with exponential back-off and jitter,
honouring Retry-After; a permanent refusal (bad signature, revoked gateway) stops sending,
keeps everything, and raises an alert.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from shared.batch import b64

log = logging.getLogger("balans.edge.uplink")

BATCHES_PATH = "/api/v1/batches"


class TransientUplinkError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RefusedError(Exception):
    """The cloud refused the batch for good (4xx other than 429)."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"cloud refused the batch: HTTP {status} {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Delivery:
    seq: int
    status: str  # stored | duplicate


class Uplink:
    """Posts one batch; the caller decides what to do with the outcome."""

    def __init__(self, base_url: str, gateway: str, timeout: float = 30.0, attempts: int = 6,
                 max_wait: float = 300.0):
        self.base_url = base_url.rstrip("/")
        self.gateway = gateway
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.attempts = attempts
        self.max_wait = max_wait
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post_once(self, seq: int, body: bytes, signature: bytes) -> Delivery:
        session = await self.session()
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Balans-Gateway": self.gateway,
            "X-Balans-Signature": b64(signature),
        }
        try:
            async with session.post(
                self.base_url + BATCHES_PATH, data=gzip.compress(body, 5), headers=headers
            ) as response:
                try:
                    answer = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    answer = {"error": "not_json"}
                if response.status in (200, 201):
                    return Delivery(seq, str(answer.get("status", "stored")))
                if response.status == 429 or response.status >= 500:
                    retry_after = response.headers.get("Retry-After")
                    raise TransientUplinkError(
                        f"HTTP {response.status}", float(retry_after) if retry_after and retry_after.isdigit() else None
                    )
                raise RefusedError(response.status, answer if isinstance(answer, dict) else {})
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise TransientUplinkError(f"network: {exc!r}") from exc

    async def post(self, seq: int, body: bytes, signature: bytes) -> Delivery:
        """Post with retries for transient failures; raises the last error when they run out."""
        backoff = wait_exponential_jitter(multiplier=0.5, max=self.max_wait)

        def wait(state) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, TransientUplinkError) and error.retry_after is not None:
                return min(error.retry_after, self.max_wait)
            return backoff(state)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientUplinkError),
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            reraise=True,
        ):
            with attempt:
                return await self.post_once(seq, body, signature)
        raise AssertionError("unreachable")
