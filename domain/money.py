"""Pence written for people: one way, everywhere a message or a note names an amount.

(:func:`allocation.money.pounds` is the number of pounds; this is the text.)
"""

from __future__ import annotations


def format_pounds(pence: int) -> str:
    """Whole pence as pounds with thousands separators: ``-123456`` -> ``-£1,234.56``.

    Exact (integer arithmetic, never a float), so a note can be checked against the pence.
    """
    pence = int(pence)
    sign = "-" if pence < 0 else ""
    whole, rest = divmod(abs(pence), 100)
    return f"{sign}£{whole:,}.{rest:02d}"
