"""A tiny data set with planted cluster structure, for engine and model tests."""
import os

import numpy as np
import pandas as pd

from tfvrec.data.dataset import write_dataset


def planted_dataset(path, num_users=90, num_items=90, clusters=3, likes=12, seed=0):
    """Users like items of their own cluster; one like per user held out to validation and test."""
    rng = np.random.default_rng(seed)
    user_cluster = np.arange(num_users) % clusters
    item_cluster = np.arange(num_items) % clusters
    rows = {"train": [], "validation": [], "test": []}
    for u in range(num_users):
        own = np.flatnonzero(item_cluster == user_cluster[u])
        chosen = rng.choice(own, size=likes, replace=False)
        for n, i in enumerate(chosen):
            split = "test" if n == 0 else "validation" if n == 1 else "train"
            rows[split].append((f"u{u}", f"i{i}", n))
    interactions = {k: pd.DataFrame(v, columns=["user", "item", "timestamp"]) for k, v in rows.items()}
    return write_dataset(os.path.join(path, "planted"),
                         users=pd.DataFrame({"user": [f"u{u}" for u in range(num_users)]}),
                         items=pd.DataFrame({"item": [f"i{i}" for i in range(num_items)]}),
                         interactions=interactions, overwrite=True)
