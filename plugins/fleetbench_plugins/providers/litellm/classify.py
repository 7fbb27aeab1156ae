"""Every failure of a litellm request, classified into a `CallStatus` with its HTTP status and a redacted detail.

litellm maps every route's errors onto the OpenAI exception classes (each carrying `status_code`), but it also reports
failures that never got an HTTP answer (a reset connection, a malformed or truncated body) as status 500. Those are
told apart by the response headers: an exception that carries none never received a status line, so its
`http_status` is None rather than an invented 500.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable, Mapping

from fleetbench.secrets import redact_text, remove_secrets
from fleetbench.types import CallStatus, ErrorClass

DETAIL_CHARS = 500
"""Longest detail stored on a call row (error texts of some gateways quote the whole request)."""

TRANSIENT_STATUSES = frozenset({408, 409, 425})
"""4xx statuses that say "try again", not "this request is wrong"."""

CONNECTION_ERRORS = (
    "APIConnectionError",
    "MalformedReply",
    "ConnectError",
    "ReadError",
    "RemoteProtocolError",
    "ClientError",
)


def verdict(exc: BaseException, secrets: Iterable[str] = ()) -> ErrorClass:
    """The class of one failed request. `secrets` (the lane's key) are removed from the detail."""
    status = _status_code(exc)
    headers = response_headers(exc)
    answered = bool(headers)
    detail = redacted_detail(exc, secrets)
    http_status = status if answered else None
    if not answered and _unsendable_headers(exc):
        # Not the endpoint's fault, and no retry can fix it: it stops the lane, as a refused key does (it was a
        # transient failure, and the lanes were parked and probed for ever).
        detail = f"{UNSENDABLE} {detail}"[:DETAIL_CHARS]
        return ErrorClass(CallStatus.AUTH, detail=detail)
    call_status = _call_status(exc, status, answered)
    retry_after = retry_after_s(headers) if call_status in (CallStatus.RATE_LIMITED, CallStatus.TRANSIENT) else None
    if call_status is CallStatus.RATE_LIMITED:
        http_status = 429
    return ErrorClass(call_status, retry_after_s=retry_after, http_status=http_status, detail=detail)


UNREACHABLE_ERRORS = ("ConnectError", "ClientConnectorError", "ConnectionRefusedError", "gaierror")
"""Causes that mean no connection was made at all (refused, no route, unknown host): the endpoint is unreachable."""


UNSENDABLE = "the request's headers cannot be sent (the API key holds a non-ASCII or control character?):"
HEADER_ENCODING_ERRORS = ("codec can't encode", "forbidden control character", "invalid header value")
"""What the HTTP clients say when a header value cannot go on the wire (httpx/h11, aiohttp)."""


def _unsendable_headers(exc: BaseException) -> bool:
    """Whether the request failed before it was sent because a header (the key) cannot be encoded."""
    return any(
        isinstance(cause, UnicodeEncodeError) or any(text in str(cause).lower() for text in HEADER_ENCODING_ERRORS)
        for cause in _chain(exc)
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from (litellm wraps the HTTP client's error several levels deep)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _call_status(exc: BaseException, status: int | None, answered: bool) -> CallStatus:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if not answered and any(type(cause).__name__ in UNREACHABLE_ERRORS for cause in _chain(exc)):
        return CallStatus.UNREACHABLE
    if names & {"Timeout", "APITimeoutError", "TimeoutError", "TimeoutException"}:
        return CallStatus.TIMEOUT
    if "ContextWindowExceededError" in names:
        return CallStatus.CONTEXT_LENGTH
    if "RateLimitError" in names or status == 429:
        return CallStatus.RATE_LIMITED
    if names & {"AuthenticationError", "PermissionDeniedError"} or status in (401, 403):
        return CallStatus.AUTH
    if "NotFoundError" in names or status == 404:
        return CallStatus.NOT_FOUND
    if names & set(CONNECTION_ERRORS) or isinstance(exc, (ConnectionError, json.JSONDecodeError)):
        return CallStatus.TRANSIENT
    if status is not None and (status >= 500 or status in TRANSIENT_STATUSES or not answered):
        return CallStatus.TRANSIENT  # unanswered: litellm's stand-in status for a reset or an unreadable body
    return CallStatus.PERMANENT


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def response_headers(exc: BaseException) -> Mapping[str, str]:
    """The HTTP response headers an exception carries (empty when no response was received)."""
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        if source:
            return {str(k).lower(): str(v) for k, v in dict(source).items()}
    return {}


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or as an HTTP date; None without either."""
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        seconds = _seconds(value.strip(), scale, time.time() if now is None else now)
        if seconds is not None:
            return seconds
    return None


def _seconds(value: str, scale: float, now: float) -> float | None:
    try:
        return max(0.0, float(value) * scale)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - now)


def redacted_detail(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line naming the exception, with every given secret and every URL secret replaced by `***`."""
    text = f"{type(exc).__name__}: {exc}" if not str(exc).startswith("litellm.") else str(exc)
    return redact_text(" ".join(remove_secrets(text, secrets).split()))[:DETAIL_CHARS]
