"""Importer: UGallery purchases -> the tfvrec data set format."""
import os
import time

import numpy as np
import pandas as pd

from tfvrec.data.importers.raw import (_check_known, _drop_duplicates, _numbers, _option_error, _path,
                                        read_raw, _sorted_ids)
from tfvrec.data.importers.writing import _write

# Raised when a change here changes what the importer writes: cached imports of it are redone
# (`tfvrec.data.resolve.importer_version`).
VERSION = 1


def import_ugallery(raw_dir, out_dir, overwrite=False, holdout="last_basket"):
    """UGallery art purchases (CuratorNet's data set), public training part + full catalogue.

    Derives: items = items.csv (all 6,030 items with their artist, so evaluation can
    rank the whole catalogue); users = buyers in purchases_train.csv; interactions
    keep ``timestamp`` and ``basket`` = user + timestamp (a basket is what one user
    bought at one instant). The real held-out baskets were never published, so with
    ``holdout="last_basket"`` the last basket of each user with >= 2 baskets becomes
    ``test`` (CuratorNet's protocol, re-applied to the public part), the rest
    ``train``; ``holdout="none"`` keeps everything in ``train``.
    """
    if holdout not in ("last_basket", "none"):
        raise _option_error(f"ugallery: option holdout must be 'last_basket' or 'none', got {holdout!r}")
    started, notes = time.time(), []
    catalogue = read_raw(_path(raw_dir, "items.csv"), ("item_id", "artist_id"), ids=("item_id", "artist_id"),
                         notes=notes)
    dup = catalogue.frame.duplicated(subset=["item_id"]).values
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise catalogue.error(row, f"item {catalogue['item_id'][row]!r} listed twice in the catalogue")
    buys = read_raw(_path(raw_dir, "purchases_train.csv"), ("user_id", "item_id", "artist_id", "timestamp"),
                    ids=("user_id", "item_id", "artist_id"), notes=notes)
    timestamp = _numbers(buys, "timestamp", "integer")
    _check_known(buys, "item_id", catalogue["item_id"], "items.csv")
    artist_of = pd.Series(catalogue["artist_id"], index=catalogue["item_id"])
    mismatch = artist_of.reindex(buys["item_id"]).values != buys["artist_id"]
    if mismatch.any():
        row = int(np.flatnonzero(mismatch)[0])
        raise buys.error(row, f"artist {buys['artist_id'][row]!r} of item {buys['item_id'][row]!r} differs from "
                              f"items.csv ({artist_of[buys['item_id'][row]]!r})")
    buys.frame["timestamp"] = timestamp
    buys = _drop_duplicates(buys, ("user_id", "item_id", "timestamp"), "purchase", notes)

    frame = pd.DataFrame({"user": buys["user_id"], "item": buys["item_id"], "timestamp": buys["timestamp"]})
    frame["basket"] = frame["user"] + "@" + frame["timestamp"].astype(str)
    baskets_per_user = frame.groupby("user")["timestamp"].transform("nunique").values
    last = frame.groupby("user")["timestamp"].transform("max").values
    is_test = (baskets_per_user >= 2) & (frame["timestamp"].values == last)
    if holdout == "none":
        is_test[:] = False
    interactions = {"train": frame[~is_test].reset_index(drop=True)}
    caveats = [
        "The real held-out baskets were never published; purchases_train.csv is only the public training part.",
        "No image embeddings (never published openly): item content is the artist only.",
        "Artists are not platform users: items have an artist, no creator.",
    ]
    if is_test.any():
        test = frame[is_test].reset_index(drop=True)
        interactions["test"] = test
        unseen = ~test["item"].isin(interactions["train"]["item"]).values
        caveats.append(
            f"test = last basket of the {test['user'].nunique()} users with >= 2 baskets, carved out of the public "
            f"training part (a second hold-out, not the paper's test set); {unseen.mean():.1%} of test rows are "
            f"items never bought in train (the paper reports ~90% for its own test).")
    counts = frame["item"].value_counts()
    caveats.append(f"Items are not all one-of-a-kind: {int((counts > 1).sum())} items were bought more than once "
                   f"(up to {int(counts.max())} times, item {counts.index[0]}), and "
                   f"{int(frame.duplicated(subset=['user', 'item']).sum())} purchases repeat a user's earlier item "
                   "at another time (kept: different baskets).")
    metadata = {
        "source": f"UGallery purchases as released with CuratorNet (Cartagena et al.); raw folder "
                  f"{os.path.abspath(raw_dir)}",
        "options": {"holdout": holdout},
        "derived": {
            "items": "items.csv (item_id -> item, artist_id -> artist); the whole catalogue",
            "users": "user_id values in purchases_train.csv",
            "interactions": "purchases_train.csv with timestamp; basket = '<user>@<timestamp>'",
            "split": ("test = every row of the last basket (max timestamp) of each user with >= 2 distinct "
                      "timestamps; train = the rest" if holdout == "last_basket" else "all in train"),
        },
        "caveats": caveats,
    }
    users = pd.DataFrame({"user": _sorted_ids(frame["user"].values)})
    items = pd.DataFrame({"item": catalogue["item_id"], "artist": catalogue["artist_id"]})
    return _write("ugallery", out_dir, overwrite, started, users, items, interactions, metadata, notes=notes)
