"""The conservation report: every penny of every line is either allocated or explained.

A run's report has two levels:

- per source line: its pence, the pence allocated to atoms, the method, and, for anything not
  allocated, the reason (reporting area not covered, a £0 line, ...);
- per target geography (each published collection): pence that reached a target unit, and pence
  that stayed outside the target set (e.g. GLA spend outside Hackney, for Hackney's wards).

``check`` raises if any line's allocated pence differ from its amount without a reason: the run
is then never written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from placespend.errors import ConservationError


@dataclass
class LineOutcome:
    """What happened to one source line."""

    line_id: int
    body: str
    line: str
    area: str
    amount_pence: int
    allocated_pence: int
    method: str | None
    proxy: str | None
    reason: str | None

    @property
    def unallocated_pence(self) -> int:
        """Pence of the line that reached no atom."""
        return self.amount_pence - self.allocated_pence


@dataclass
class TargetOutcome:
    """How a run's atom-level pence landed in one target geography."""

    target_set: str
    features: int
    allocated_pence: int
    outside_pence: int
    reason: str | None = None


@dataclass
class ConservationReport:
    """Totals and per-line, per-target outcomes of one run."""

    lines: list[LineOutcome]
    targets: list[TargetOutcome] = field(default_factory=list)

    @property
    def total_pence(self) -> int:
        """Signed pence of all source lines."""
        return sum(o.amount_pence for o in self.lines)

    @property
    def allocated_pence(self) -> int:
        """Signed pence that reached atoms."""
        return sum(o.allocated_pence for o in self.lines)

    @property
    def unallocated_pence(self) -> int:
        """Signed pence that reached no atom (each such line carries a reason)."""
        return self.total_pence - self.allocated_pence

    def check(self) -> None:
        """Raise unless every line adds back, and every shortfall has a reason."""
        for o in self.lines:
            if o.unallocated_pence and not o.reason:
                raise ConservationError(
                    f"line {o.line_id} ({o.body}, {o.line}) allocated {o.allocated_pence}p "
                    f"of {o.amount_pence}p with no reason",
                    "report this as a bug; the run was not written",
                )
        for t in self.targets:
            if t.allocated_pence + t.outside_pence != self.allocated_pence:
                raise ConservationError(
                    f"target {t.target_set}: {t.allocated_pence}p inside + {t.outside_pence}p "
                    f"outside != {self.allocated_pence}p allocated",
                    "report this as a bug; the run was not written",
                )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored with the run and served by the API."""
        return {
            "total_pence": self.total_pence,
            "allocated_pence": self.allocated_pence,
            "unallocated_pence": self.unallocated_pence,
            "lines": [asdict(o) | {"unallocated_pence": o.unallocated_pence} for o in self.lines],
            "targets": [asdict(t) for t in self.targets],
        }
