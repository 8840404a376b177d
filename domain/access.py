"""Who may write what: roles, scopes and the one check every write makes.

Reads are public. A write needs a key (``placespend keys create``) whose role allows it:

- ``viewer``: no writes (a key that identifies a reader, e.g. for rate limits);
- ``editor``: loads, runs, publishing and saving neighbourhoods. An editor may be scoped to
  bodies (their spend and transfers only) and to places (boundary or neighbourhood sets by
  slug); a scoped editor may not load reference data of everyone (proxies, sites, postcodes,
  function maps), nor make or publish runs, which cover every body;
- ``admin``: everything, including keys and reading the audit log.

The CLI acts as the operator (:data:`OPERATOR`): it runs with the database owner's rights.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import Forbidden

ROLES = ("viewer", "editor", "admin")


@dataclass(frozen=True)
class Grant:
    """What one key (or the CLI) may do: its role and, for an editor, its scope."""

    name: str
    role: str
    bodies: frozenset[str] | None = None   # None: every body
    places: frozenset[str] | None = None   # None: every boundary or neighbourhood set

    @property
    def scoped(self) -> bool:
        """True if the key is limited to some bodies or places."""
        return self.bodies is not None or self.places is not None

    def describe(self) -> str:
        """``editor of hackney`` and the like, for messages."""
        scope = [*sorted(self.bodies or ()), *sorted(self.places or ())]
        return f"{self.role}" + (f" of {', '.join(scope)}" if scope else "")

    def need(self, role: str, action: str) -> None:
        """Forbidden unless the role is ``role`` or above."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise Forbidden(f"the key {self.name!r} ({self.describe()}) may not {action}",
                            f"use a key with the {role} role (an administrator makes one: "
                            f"`placespend keys create NAME --role {role}`)")

    def need_unscoped(self, action: str) -> None:
        """Forbidden unless an unscoped editor or an admin (the action touches everyone's)."""
        self.need("editor", action)
        if self.role != "admin" and self.scoped:
            raise Forbidden(
                f"the key {self.name!r} ({self.describe()}) may not {action}: it covers every "
                "body and place, and this key is limited to some",
                "use an editor key without a scope, or ask an administrator")

    def covers(self, kind: str, value: str) -> bool:
        """True if this key may write for ``value``, a body (``kind="bodies"``) or a place.

        An admin or an unscoped editor covers everything; a scoped editor only what its scope
        of that kind names (an editor scoped to places only covers no body, and the reverse).
        """
        if self.role == "admin":
            return True
        mine = self.bodies if kind == "bodies" else self.places
        return self.role == "editor" and (
            not self.scoped or mine is not None and value in mine)

    def covers_body(self, body: str) -> bool:
        """True if an editor (or admin) of this key may write for ``body``."""
        return self.covers("bodies", body)

    def _need_covered(self, kind: str, value: str, action: str) -> None:
        self.need("editor", action)
        if not self.covers(kind, value):
            word = "for" if kind == "bodies" else "in"
            raise Forbidden(f"the key {self.name!r} ({self.describe()}) may not {action} "
                            f"{word} {value}",
                            f"use a key scoped to {value}, or ask an administrator")

    def need_body(self, body: str, action: str) -> None:
        """Forbidden unless an editor whose bodies include ``body`` (or every body)."""
        self._need_covered("bodies", body, action)

    def need_place(self, place: str, action: str) -> None:
        """Forbidden unless an editor whose places include ``place`` (or every place)."""
        self._need_covered("places", place, action)


#: The CLI: the operator at the server, with the owner's rights.
OPERATOR = Grant(name="cli", role="admin")
