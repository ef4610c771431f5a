"""Toy sizes of a real data set, for quick modes: the same tables, the interactions of fewer users and items.

`subset(ctx, config, users=N, items=ids)` imports the config's data set (as the full run would), then
writes a copy under the context's cache that keeps every user row, the item rows of ``items`` (an id
list; default every item) and only the interactions (every split) and post tags of the first ``N``
users with training interactions on those items; the config overrides it returns point the run at the
copy (``data.source=directory``). Splits, social links, creators, image paths and feature files are kept
as they are, so a quick run exercises the same code on the same kind of data, only less of it:
evaluation time is proportional to the users judged, and items the quick features did not cover can be
left out (only where no table names them: a creator is a user, never an item).
"""
import hashlib
import json
import os
import shutil

from harness import log

FILTERED = ("items.tsv", "interactions", "post_tags.tsv")
VERSION = 2  # of the copy's making: part of its cache key


def subset(ctx, config, users=None, items=None):
    """Config overrides (``data.source=directory``, ``data.path``) of a toy copy of ``config``'s data set."""
    import pandas as pd
    from tfvrec.data.resolve import dataset_path
    source = os.path.abspath(dataset_path(config.data))  # imports the data set once, as a full run would
    key = hashlib.sha256(json.dumps([VERSION, source, users, sorted(map(str, items)) if items is not None else None])
                         .encode()).hexdigest()[:10]
    out = os.path.join(ctx.cache_dir, "toy", f"{os.path.basename(source)}-{key}")
    if not os.path.isdir(out):
        def read(path):
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        train = read(os.path.join(source, "interactions", "train.tsv"))
        if items is not None:
            kept_items = set(map(str, items))
            train = train[train["item"].isin(kept_items)]
        order = pd.unique(train["user"])
        kept_users = set(order[:users] if users else order)
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=lambda d, names: FILTERED if os.path.abspath(d) == source else ())
        table = read(os.path.join(source, "items.tsv"))
        if items is not None:
            table = table[table["item"].isin(kept_items)]
        if "image" in table:  # relative image paths pointed into the source folder
            table["image"] = [p if not p or os.path.isabs(p) else os.path.join(source, p) for p in table["image"]]
        table.to_csv(os.path.join(tmp, "items.tsv"), sep="\t", index=False)
        os.makedirs(os.path.join(tmp, "interactions"))
        for name in os.listdir(os.path.join(source, "interactions")):
            frame = read(os.path.join(source, "interactions", name))
            frame = frame[frame["user"].isin(kept_users)]
            if items is not None:
                frame = frame[frame["item"].isin(kept_items)]
            frame.to_csv(os.path.join(tmp, "interactions", name), sep="\t", index=False)
        tags = os.path.join(source, "post_tags.tsv")
        if os.path.exists(tags):
            frame = read(tags)
            frame = frame[frame["user"].isin(kept_users)]
            if items is not None:
                frame = frame[frame["item"].isin(kept_items)]
            frame.to_csv(os.path.join(tmp, "post_tags.tsv"), sep="\t", index=False)
        os.replace(tmp, out)
        log(f"toy data set: {len(kept_users)} users' interactions of {os.path.basename(source)} -> {out}")
    return ["data.source=directory", f"data.path={out}"]


def config(ctx, path, sets=(), users=400, items=None):
    """``ctx.config(path, sets)``, on a toy copy of its data set in quick mode (`subset`)."""
    loaded = ctx.config(path, sets)
    if not ctx.quick:
        return loaded
    return ctx.config(path, list(sets) + subset(ctx, loaded, users, items))
