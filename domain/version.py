"""The version of the figures, apart from the version of the package.

:data:`ALGORITHM_VERSION` is part of every run's reuse key and of every ETag. Change it in the
same commit as any change that could alter a published figure (apportionment, rounding, atoms,
crosswalks, the properties of a feature): an upgraded install then makes new runs instead of
answering "already published" with the old figures, and clients' cached pages stop validating.
"""

from __future__ import annotations

#: Bump on every change that could move a penny or a published property. History:
#: 1 (foundation: per-line largest remainder, runs tied to their target sets);
#: 2 (atom product per (atom, body, function, method), running-total rounding, publications
#: derived from runs).
ALGORITHM_VERSION = "2"
