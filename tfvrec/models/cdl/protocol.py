"""CDL's evaluation split (Lei et al., §6.1.1): users with 40–200 favourites each hide 20 of them.

`write_paper_split` copies a tfvrec data set and re-splits its likes: for every user with
``min_likes``–``max_likes`` likes (over all splits), ``hidden`` likes drawn at random (a pure
function of the seed) become ``test``; everything else is ``train``. Ranked with the
``candidates:100`` protocol (the 20 hidden likes among 100 candidates, the others never
liked by the user), a random ranking has P@K = 0.2 and R@K = K / 100.
``tfvrec cdl-split`` runs it from the command line.

§5's candidate rule — "a set of candidate images are selected, where each candidate shall have
at least one tag of the user's interests" — is protocol ``interest_candidates:N``: the N
candidates of ``candidates:N`` with the others drawn from `interest_candidate_pool`. TensorFlow-free.
"""
import os
import shutil

import numpy as np
import pandas as pd

from tfvrec import outputs
from tfvrec.data.dataset import SPLITS
from tfvrec.data.errors import DataError
from tfvrec.models.cdl.sampling import interest_items


def paper_split(likes, min_likes=40, max_likes=200, hidden=20, seed=0):
    """``(train, test)`` frames of the ``likes`` frame (columns user, item, ...)."""
    likes = likes.drop_duplicates(subset=["user", "item"]).reset_index(drop=True)
    counts = likes.groupby("user")["item"].transform("size").values
    eligible = (counts >= min_likes) & (counts <= max_likes)
    rng = np.random.default_rng([seed, 13])
    key = rng.random(len(likes))
    frame = likes.assign(_key=key, _eligible=eligible)
    rank = frame.groupby("user")["_key"].rank(method="first").values
    is_test = eligible & (rank <= hidden)
    return likes[~is_test].reset_index(drop=True), likes[is_test].reset_index(drop=True)


def interest_candidate_pool(dataset, heldout=None):
    """Per user (``heldout``'s users, else every user): the sorted items sharing at least one
    interest tag with them (§5: the tags of their training images and their own post tags, as
    the negatives of `sampling.interest_items` avoid them), plus their held-out items — the paper
    mixes every concealed favourite with the 80 others (§6.1.1), so the rule picks the others.
    The protocol still never draws a user's training items. A user without an interest tag gets
    their held-out items alone (counted by the protocol as short of negatives)."""
    tagged = interest_items(dataset)
    users = range(dataset.num_users) if heldout is None else sorted(heldout)
    empty = np.zeros(0, np.int64)
    pools = {}
    for user in users:
        items = np.flatnonzero(tagged[user]).astype(np.int64) if tagged is not None else empty
        if heldout is not None:
            items = np.union1d(items, np.asarray(heldout[user], np.int64))
        pools[int(user)] = items
    return pools


def write_paper_split(source, out, min_likes=40, max_likes=200, hidden=20, seed=0, overwrite=False):
    """Copy data set ``source`` to ``out`` with the paper's split; returns ``(out, number of test users)``."""
    source, out = os.path.abspath(source), os.path.abspath(out)
    if not os.path.isdir(os.path.join(source, "interactions")):
        raise DataError(source, "not a tfvrec data set (no interactions/ folder)")
    # --out never is, holds or lies in --data; --overwrite replaces only a data set tfvrec wrote.
    outputs.prepare(out, "dataset", overwrite=overwrite, inputs={"--data": source})
    if hidden >= min_likes:
        raise ValueError(f"hidden ({hidden}) must be below min_likes ({min_likes}): users keep likes to train on")
    frames = []
    for split in SPLITS:
        path = os.path.join(source, "interactions", f"{split}.tsv")
        if os.path.exists(path):
            frames.append(pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False))
    likes = pd.concat(frames, ignore_index=True)
    train, test = paper_split(likes, min_likes, max_likes, hidden, seed)
    tmp = outputs.temporary(out)
    try:
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("interactions"), dirs_exist_ok=True)
        os.makedirs(os.path.join(tmp, "interactions"))
        train.to_csv(os.path.join(tmp, "interactions", "train.tsv"), sep="\t", index=False)
        test.to_csv(os.path.join(tmp, "interactions", "test.tsv"), sep="\t", index=False)
        items = os.path.join(tmp, "items.tsv")
        table = pd.read_csv(items, sep="\t", dtype=str, keep_default_na=False)
        if "image" in table:  # relative image paths pointed into the source folder
            table["image"] = [p if not p or os.path.isabs(p) else os.path.join(source, p) for p in table["image"]]
            table.to_csv(items, sep="\t", index=False)
        outputs.publish(tmp, out, "dataset", overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, int(test["user"].nunique())


def run_cli(args):
    """``tfvrec`` verb of `tfvrec.models.cdl.cli` (its arguments there)."""
    out, users = write_paper_split(args.data, args.out, min_likes=args.min_likes, max_likes=args.max_likes,
                                   hidden=args.hidden, seed=args.seed, overwrite=args.overwrite)
    print(f"{out}: {users} users with {args.min_likes}-{args.max_likes} likes hide {args.hidden} each (split 'test')")
