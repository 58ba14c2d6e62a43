"""The simulated engine's prefix cache: fixed-size blocks of tokens, chained hashes, LRU eviction.

As vLLM's automatic prefix caching: a prompt is cut into blocks of `block_size` tokens (a last partial
block is never cached); block i is named by the hash of block i-1's name and its own tokens, so a block
is reused only after the same whole prefix. `match` counts the leading blocks already held; `insert`
holds all of a prompt's full blocks, evicting the least recently used beyond `capacity` blocks.
Tokens are words here, the same approximation the gateway's prefix routing makes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def block_hashes(tokens: Sequence[str], block_size: int) -> list[int]:
    """The chained hash of each full block of `tokens`."""
    hashes, parent = [], 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start:start + block_size])))
        hashes.append(parent)
    return hashes


class PrefixCache:
    def __init__(self, capacity: int, block_size: int) -> None:
        if capacity < 1 or block_size < 1:
            raise ValueError("capacity and block_size must be at least 1")
        self.capacity, self.block_size = capacity, block_size
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def match(self, hashes: Sequence[int]) -> int:
        """How many leading blocks are cached (each one found becomes the most recently used)."""
        found = 0
        for block in hashes:
            if block not in self._blocks:
                break
            self._blocks.move_to_end(block)
            found += 1
        return found

    def insert(self, hashes: Sequence[int]) -> None:
        for block in hashes:
            self._blocks[block] = None
            self._blocks.move_to_end(block)
        while len(self._blocks) > self.capacity:
            self._blocks.popitem(last=False)
