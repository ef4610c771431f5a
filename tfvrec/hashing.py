"""Hashing shared by evaluation tie-breaks, the random baseline and triplet deduplication."""
import numpy as np


def mix64(x):
    """splitmix64's finaliser (Steele, Lea, Flood 2014): a cheap bijection on uint64 with good
    avalanche, so hashed keys behave like independent uniform draws."""
    x = np.asarray(x).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
