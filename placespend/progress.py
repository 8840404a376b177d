"""Progress for long steps: the CLI shows a spinner per step, everything else stays quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

#: A step reporter: ``with step("Building atoms"): ...``.
Step = Callable[[str], AbstractContextManager[None]]


@contextmanager
def quiet(label: str) -> Iterator[None]:
    """A step reporter that reports nothing."""
    yield
