"""Small drawing and array helpers shared by the world's generation steps."""
import numpy as np

BLOCK_ROWS = 256  # users per block when scoring dense user x item matrices


def width(n):
    return len(str(max(n - 1, 0)))


def normalize(x):
    x = np.asarray(x, dtype=np.float64)
    return x / x.sum(axis=-1, keepdims=True)


def style_kernel(a, b, bandwidth):
    """Gaussian similarity of styles, ``[len(a), len(b)]``."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-np.maximum(d2, 0) / (2 * bandwidth ** 2)) + 1e-12


def sample_rows(weights, rng):
    """One category per row of (unnormalised) ``weights``."""
    cdf = np.cumsum(weights, axis=1)
    draw = rng.uniform(size=(len(weights), 1)) * cdf[:, -1:]
    return np.minimum((draw > cdf).sum(axis=1), weights.shape[1] - 1).astype(np.int64)


def heavy_tailed_counts(rng, n, mean, spread, low, high):
    """Log-normal counts with the given mean, clipped to [low, high]."""
    raw = rng.lognormal(np.log(mean) - spread ** 2 / 2, spread, size=n)
    return np.clip(np.rint(raw), low, high).astype(np.int64)


def group(keys, values, n):
    """List of length ``n``: the ``values`` whose key is k, for each k."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n + 1))
    return [values[order[bounds[k]:bounds[k + 1]]] for k in range(n)]
