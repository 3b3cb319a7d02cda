"""Domain errors: what a business rule refuses, in the words of the domain.

The kernel, rating and billing raise these; they know nothing of HTTP. Only ``api/`` turns
them into problem+json answers (api.problems: NotFound -> 404, Conflict -> 409,
Invalid -> 422), so billing and the command line reuse the same services and the same
refusals as the API.
"""

from __future__ import annotations

from collections.abc import Sequence


class DomainError(Exception):
    """A refusal by a business rule. ``code`` is a stable, machine-readable slug."""

    code = "domain-error"
    title = "Refused"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class NotFound(DomainError):
    """Something the request names does not exist (or is not the caller's to see)."""

    code = "not-found"
    title = "Not found"


class Conflict(DomainError):
    """The request contradicts what is already stored (a reused key, a closed period)."""

    code = "conflict"
    title = "Conflict"


class Invalid(DomainError):
    """Well-formed input that a rule refuses. ``field`` locates it, e.g. ("body", "amount")."""

    code = "validation-error"
    title = "Invalid request"

    def __init__(
        self, detail: str, *, field: Sequence[str | int] = (), code: str | None = None,
        error_type: str = "value_error",
    ) -> None:
        super().__init__(detail, code=code)
        self.field = list(field)
        self.error_type = error_type
