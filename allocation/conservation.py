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

import pandas as pd

from domain.errors import ConservationError

#: The columns of a report's line table, in order (one row per source line).
LINE_COLUMNS = ("line_id", "body", "line", "area", "amount_pence", "allocated_pence", "method",
                "proxy", "reason")


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
    """Totals, the per-line table and the per-target outcomes of one run.

    ``lines`` has :data:`LINE_COLUMNS`: each line's pence, what reached atoms, the method, the
    proxy asked for and, for anything not allocated (or a note such as "the line is £0"), the
    reason. It is stored as a table with the run and served in pages and as CSV.
    """

    lines: pd.DataFrame
    targets: list[TargetOutcome] = field(default_factory=list)

    @property
    def total_pence(self) -> int:
        """Signed pence of all source lines."""
        return int(self.lines["amount_pence"].sum())

    @property
    def allocated_pence(self) -> int:
        """Signed pence that reached atoms."""
        return int(self.lines["allocated_pence"].sum())

    @property
    def unallocated_pence(self) -> int:
        """Signed pence that reached no atom (each such line carries a reason)."""
        return self.total_pence - self.allocated_pence

    def check(self) -> None:
        """Raise unless every line adds back, and every shortfall has a reason."""
        short = self.lines["amount_pence"] != self.lines["allocated_pence"]
        silent = short & self.lines["reason"].isna()
        if silent.any():
            o = self.lines.loc[silent].iloc[0]
            raise ConservationError(
                f"line {o['line_id']} ({o['body']}, {o['line']}) allocated "
                f"{o['allocated_pence']}p of {o['amount_pence']}p with no reason",
                "report this as a bug; the run was not written",
            )
        for t in self.targets:
            if t.allocated_pence + t.outside_pence != self.allocated_pence:
                raise ConservationError(
                    f"target {t.target_set}: {t.allocated_pence}p inside + {t.outside_pence}p "
                    f"outside != {self.allocated_pence}p allocated",
                    "report this as a bug; the run was not written",
                )

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals of the run.

        The line table is stored and served apart, and each publication keeps its own inside
        and outside pence.
        """
        short = self.lines["amount_pence"] != self.lines["allocated_pence"]
        out: dict[str, Any] = {
            "total_pence": self.total_pence,
            "allocated_pence": self.allocated_pence,
            "unallocated_pence": self.unallocated_pence,
            "lines": len(self.lines),
            "lines_unallocated": int(short.sum()),
        }
        if self.targets:
            out["targets"] = [asdict(t) for t in self.targets]
        return out
