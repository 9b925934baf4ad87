"""The domain's error tree.

Every error a user can cause carries an HTTP status, a short title and a detail that names the
offending field and value. The web layer renders them as RFC 9457 problem bodies; nothing here
imports the web framework, so the numeric core raises them too.
"""

from __future__ import annotations

from typing import ClassVar


class EvalserveError(Exception):
    """Base class: an error with an HTTP status and a problem-body title."""

    status_code: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail


class InvalidInput(EvalserveError):
    """The request is well-formed JSON but its values cannot be evaluated (422)."""

    status_code = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class PayloadTooLarge(EvalserveError):
    status_code = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class UnsupportedMediaType(EvalserveError):
    status_code = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class Unauthorized(EvalserveError):
    """No API key, or one that is unknown or revoked (401; sent with ``WWW-Authenticate``)."""

    status_code = 401
    title = "Unauthorized"
    type_slug = "unauthorized"
    #: Response headers the problem body is sent with (RFC 9110: a 401 must challenge).
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class Forbidden(EvalserveError):
    """A valid API key whose scope does not allow the request (403)."""

    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(EvalserveError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(EvalserveError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class ServiceUnavailable(EvalserveError):
    status_code = 503
    title = "Service unavailable"
    type_slug = "service-unavailable"


class TooManyRequests(EvalserveError):
    """A per-key limit is reached (429, sent with ``Retry-After``)."""

    status_code = 429
    title = "Too many requests"
    type_slug = "too-many-requests"

    def __init__(self, detail: str, *, field: str | None = None, retry_after_s: int = 30) -> None:
        super().__init__(detail, field=field)
        self.headers = {"Retry-After": str(retry_after_s)}


class RequestTimeout(ServiceUnavailable):
    """The request ran past ``request_timeout_s`` (503, sent with ``Retry-After``)."""

    title = "Request timed out"
    type_slug = "request-timeout"


class UndefinedMetricError(ArithmeticError):
    """A metric has no value on this batch (e.g. ROC-AUC with one class present).

    Not an HTTP error: the report turns it into ``null`` plus a warning carrying ``reason``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
