"""Hashing shared by evaluation tie-breaks, the random baseline and triplet deduplication."""
from typing import List

import numpy as np


def mix64(x):
    """splitmix64's finaliser (Steele, Lea, Flood 2014): a cheap bijection on uint64 with good
    avalanche, so hashed keys behave like independent uniform draws."""
    x = np.asarray(x).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class HashSet:
    """A set of uint64 hashes as sorted runs merged like a log-structured merge tree.

    8 bytes per member plus a transient copy while merging; membership of a chunk is
    one ``searchsorted`` per run (O(log n) runs).
    """

    def __init__(self):
        self.runs: List[np.ndarray] = []

    def __len__(self):
        return sum(len(r) for r in self.runs)

    @property
    def nbytes(self):
        return sum(r.nbytes for r in self.runs)

    def contains(self, hashes):
        found = np.zeros(len(hashes), dtype=bool)
        for run in self.runs:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            found |= run[at] == hashes
        return found

    def add(self, hashes):
        """Add hashes known to be absent and distinct."""
        if not len(hashes):
            return
        self.runs.append(np.sort(hashes))
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            last = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], last]), kind="stable")
