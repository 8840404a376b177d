"""Domain errors: every one names the cause and the fix.

Domain code raises these; ``api/errors.py`` maps them to HTTP status codes and the CLI prints
them as one line. Nothing here imports a framework, so the pure core may raise them too.
"""

from __future__ import annotations


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
