"""Importer: HASC's Flickr F.S -> the tfvrec data set format."""
import os
import time

import numpy as np
import pandas as pd

from tfvrec.data.importers.raw import _drop_duplicates, _note, _path, read_raw, _sorted_ids
from tfvrec.data.importers.writing import _write

# Raised when a change here changes what the importer writes: cached imports of it are redone
# (`tfvrec.data.resolve.importer_version`).
VERSION = 1


def import_flickr_fs(raw_dir, out_dir, overwrite=False):
    """HASC's Flickr "F.S" data set, with its own train/validation split.

    Derives: users = every id in likes, follows (both ends) and uploads (uploaders
    are users, so ``items.creator`` = uploader and HASC's creator aspect resolves);
    items = every item in likes or uploads; ``train`` = likes_train.tsv;
    ``validation`` = likes_val.tsv (one held-out like per user); social = follows.tsv.
    There is no test split: the raw folder has no test likes (the paper counts
    761,812 likes; train + validation hold ~4.4k fewer, about one per user).
    """
    started, notes = time.time(), []
    train = read_raw(_path(raw_dir, "likes_train.tsv"), ("user", "item"), ids=("user", "item"), notes=notes)
    val = read_raw(_path(raw_dir, "likes_val.tsv"), ("user", "item"), ids=("user", "item"), notes=notes)
    follows = read_raw(_path(raw_dir, "follows.tsv"), ("user", "followed"), ids=("user", "followed"), notes=notes)
    uploads = read_raw(_path(raw_dir, "uploads.tsv"), ("item", "uploader"), ids=("item", "uploader"), notes=notes)

    train = _drop_duplicates(train, ("user", "item"), "like", notes)
    val = _drop_duplicates(val, ("user", "item"), "like", notes)
    follows = _drop_duplicates(follows, ("user", "followed"), "follow", notes)
    uploads = _drop_duplicates(uploads, ("item", "uploader"), "upload", notes)
    # An image has one uploader; two different ones means the file is corrupt, not something to pick from.
    conflict = uploads.frame.duplicated(subset=["item"]).values
    if conflict.any():
        row = int(np.flatnonzero(conflict)[0])
        raise uploads.error(row, f"item {uploads['item'][row]!r} has a second, different uploader")

    users = _sorted_ids(train["user"], val["user"], follows["user"], follows["followed"], uploads["uploader"])
    item_ids = _sorted_ids(train["item"], val["item"], uploads["item"])
    creator = pd.Series(uploads["uploader"], index=uploads["item"]).reindex(item_ids).fillna("").values
    leaked = pd.MultiIndex.from_arrays([val["user"], val["item"]]).isin(
        pd.MultiIndex.from_arrays([train["user"], train["item"]]))
    if leaked.any():
        _note(notes, f"likes_val.tsv: {int(leaked.sum())} validation like(s) also appear in likes_train.tsv "
                     f"(kept in both; first: line {int(val.lines[leaked][0])})")
    self_follows = int((follows["user"] == follows["followed"]).sum())

    metadata = {
        "source": "HASC paper (Wu et al.), Flickr F.S data set with the authors' own split and re-indexed ids; "
                  f"raw folder {os.path.abspath(raw_dir)}",
        "derived": {
            "users": "union of ids in likes_train, likes_val, follows (both columns) and uploads.uploader",
            "items": "union of items in likes_train, likes_val and uploads",
            "items.creator": "uploads.tsv uploader (uploaders are users)",
            "interactions/train": "likes_train.tsv",
            "interactions/validation": "likes_val.tsv (the authors' held-out like, one per user)",
            "social": "follows.tsv (user follows followed)",
        },
        "caveats": [
            f"No test split: the raw folder has no test likes (the paper counts 761,812 likes, train + "
            f"validation here hold {len(train) + len(val):,}); evaluate on validation.",
            "No image features or pixels (never published): HASC runs without the visual term.",
            "Ids are the authors' re-indexed integers kept as strings; raw likes_val.tsv rows resolve directly.",
            f"Items without an uploader (so without creator): {int((creator == '').sum())}.",
            f"Self-follow links: {self_follows}.",
        ],
    }
    items = pd.DataFrame({"item": item_ids, "creator": creator})
    return _write("flickr_fs", out_dir, overwrite, started, pd.DataFrame({"user": users}), items,
                  {"train": train.frame[["user", "item"]], "validation": val.frame[["user", "item"]]},
                  metadata, social=follows.frame[["user", "followed"]], notes=notes)
