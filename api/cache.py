"""A bounded in-process cache of response bytes, for what can never change (run-pinned tiles).

Keys are ETags (:func:`api.http.layer_etag`): a layer's id and version and the parameter
object, so a cached answer is served only for exactly the request that made it.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

#: Bytes an entry costs beyond its value and key (the dict slot, the objects): an estimate.
ENTRY_OVERHEAD = 200


class ByteCache:
    """Least recently used byte strings, up to ``max_bytes`` in all (0: cache nothing)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    @staticmethod
    def cost(key: str, value: bytes) -> int:
        """What an entry counts against the bound: its bytes, key and a fixed overhead.

        The overhead makes a million empty tiles cost memory too, as they do.
        """
        return len(value) + len(key) + ENTRY_OVERHEAD

    def put(self, key: str, value: bytes) -> None:
        """Store ``value``, dropping the least recently used entries to stay within bounds."""
        cost = self.cost(key, value)
        if cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self.cost(key, old)
            self._items[key] = value
            self._size += cost
            while self._size > self.max_bytes:
                dropped_key, dropped = self._items.popitem(last=False)
                self._size -= self.cost(dropped_key, dropped)

    @property
    def size(self) -> int:
        """What the entries count against the bound now."""
        return self._size
