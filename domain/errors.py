"""Domain errors: every one names the cause and the fix.

Domain code raises these; ``api/errors.py`` maps them to HTTP status codes and the CLI prints
them as one line. Nothing here imports a framework, so the pure core may raise them too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class PlacespendError(Exception):
    """Base class: ``cause`` says what went wrong, ``fix`` what the user can do about it."""

    #: HTTP status the API answers with (the CLI ignores it).
    status: int = 400
    #: Short machine-readable code for clients.
    code: str = "error"

    def __init__(self, cause: str, fix: str = "", *, where: str | None = None) -> None:
        self.cause = cause
        self.fix = fix
        self.where = where
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with cause, fix and where (errors cross processes on a dask cluster)."""
        return (_rebuild, (type(self), self.cause, self.fix, self.where))

    def one_line(self) -> str:
        """Render as the single line the CLI prints."""
        where = f" [{self.where}]" if self.where else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.cause}{where}.{fix}"

    def as_dict(self) -> dict[str, str | None]:
        """Render for a JSON error body."""
        return {"code": self.code, "cause": self.cause, "where": self.where, "fix": self.fix}


def _rebuild(kind: type[PlacespendError], cause: str, fix: str,
             where: str | None) -> PlacespendError:
    return kind(cause, fix, where=where)


class SetupError(PlacespendError):
    """The machine or database cannot be set up (missing package, port in use, cannot start)."""

    status = 503
    code = "setup"


class InputError(PlacespendError):
    """An input file, row or feature is wrong; ``where`` names the row or feature at fault."""

    status = 422
    code = "invalid_input"


class TooLarge(InputError):
    """An upload is over the size limit."""

    status = 413
    code = "too_large"


class BadRequest(PlacespendError):
    """A request parameter is malformed or out of range (a bbox, a CRS, a date)."""

    status = 400
    code = "bad_request"


class DuplicateUpload(PlacespendError):
    """The same content was already loaded."""

    status = 409
    code = "duplicate"


class NotFound(PlacespendError):
    """A named thing (collection, run, boundary set) does not exist."""

    status = 404
    code = "not_found"


class ConservationError(PlacespendError):
    """Allocated pence do not add back to the source line: a bug, never published."""

    status = 500
    code = "conservation"


class ImmutableError(PlacespendError):
    """Someone tried to change a published run."""

    status = 409
    code = "immutable"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row, feature or file of an upload.

    ``where`` names it for people ("row 12", "feature 3 (E05000001)", "file"); ``row`` (1-based
    line of the file, header = line 1) or ``feature`` (1-based) say it for programs. ``field`` and
    ``value`` are what was read, ``reason`` why it is refused and ``fix`` what to do.
    """

    where: str
    reason: str
    fix: str
    field: str | None = None
    value: str | None = None
    row: int | None = None
    feature: int | None = None

    def __post_init__(self) -> None:
        # numpy integers (a feature number from np.flatnonzero) are not JSON: keep plain ints
        for name in ("row", "feature"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                object.__setattr__(self, name, int(value))
        if self.value is not None and not isinstance(self.value, str):
            object.__setattr__(self, "value", str(self.value))

    def as_dict(self) -> dict[str, object]:
        """Render for a JSON error body."""
        return asdict(self)

    def one_line(self) -> str:
        """Render as one line: where, field, value, reason and fix."""
        field = f" {self.field}" if self.field else ""
        value = f" {self.value!r}" if self.value is not None else ""
        return f"{self.where}:{field}{value}: {self.reason}. Fix: {self.fix}"


#: How many problems a rejection carries at most (the count says how many were found).
MAX_PROBLEMS = 200


class Rejected(InputError):
    """A whole upload refused, with every problem found in it (nothing of it was stored)."""

    code = "rejected"

    def __init__(self, what: str, problems: list[Problem], *, total: int | None = None) -> None:
        self.problems = list(problems[:MAX_PROBLEMS])
        self.total = len(problems) if total is None else total
        first = self.problems[0] if self.problems else None
        more = f" (and {self.total - 1} more)" if self.total > 1 else ""
        cause = f"{what} was refused: {self.total} problem{'s' if self.total != 1 else ''}"
        if first is not None:
            cause += f", first {first.where}"
            if first.field:
                cause += f" {first.field}"
            if first.value is not None:
                cause += f" {first.value!r}"
            cause += f": {first.reason}{more}"
        super().__init__(cause, first.fix if first else "", where=first.where if first else None)
        self.what = what

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the problems."""
        return (Rejected, (self.what, self.problems), {"total": self.total})

    def __setstate__(self, state: dict[str, object]) -> None:
        self.total = int(state["total"])  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:  # type: ignore[override]
        """Render for a JSON error body: the summary and every problem."""
        return {**super().as_dict(), "total": self.total,
                "problems": [p.as_dict() for p in self.problems]}


class Unauthorized(PlacespendError):
    """A write came without a valid API key."""

    status = 401
    code = "unauthorized"


class Forbidden(PlacespendError):
    """The API key is known but may not do this (revoked, or the wrong role)."""

    status = 403
    code = "forbidden"


class Conflict(PlacespendError):
    """Another request wrote the same thing at the same moment, or the write breaks a rule."""

    status = 409
    code = "conflict"


class Unavailable(PlacespendError):
    """The database is out of reach, out of space, or took longer than allowed: retry later."""

    status = 503
    code = "unavailable"


class RateLimited(PlacespendError):
    """Too many requests from one key or client."""

    status = 429
    code = "rate_limited"
