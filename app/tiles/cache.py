"""A size-bounded (bytes) LRU of encoded tiles, shared by the worker threads of one process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class CachedTile:
    """A tile as served: the MVT bytes, their gzip form, and each layer's feature count."""

    raw: bytes
    gz: bytes
    counts: tuple[int, ...]

    @property
    def size(self) -> int:
        # Bytes held, plus a flat per-entry allowance for the key and the objects themselves.
        return len(self.raw) + len(self.gz) + 200


class TileCache:
    """LRU by bytes. Keys carry the data version, so entries never go stale: they age out.

    ``max_bytes == 0`` disables it (every ``get`` misses, ``put`` stores nothing).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedTile] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> CachedTile | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: Hashable, tile: CachedTile) -> None:
        if tile.size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[key] = tile
            self._bytes += tile.size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
