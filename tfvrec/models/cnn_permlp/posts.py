"""Posts and the paper's protocol (§4.1): who tagged which image with what, split per user.

A post is a (user, item) pair with the set of tags the user gave the item (the data
set's ``post_tags``). Tags used fewer than ``min_tag_count`` times over all posts are
dropped (and posts left without a tag with them). The split is leave-posts-out per user:
``test_posts`` posts of every user (NUS-WIDE: 2), or else ``test_fraction`` of them
(Flickr-PTR: 20%), go to the test set; then ``holdout_fraction`` of each user's remaining
posts are held out for validation (early stopping and tuning never see the test set).
Users with fewer than ``min_user_posts`` posts keep every post in training. The split is
a pure function of the posts and ``split_seed``.

A test post's image is *new* when no training post has the same item: the paper's
"new images" view, where a factorisation model knows nothing about the item.
NumPy only.
"""
import dataclasses

import numpy as np

from tfvrec.data.errors import DataError

SPLITS = ("train", "holdout", "test")


@dataclasses.dataclass
class Posts:
    """All posts of a data set with their split. ``tags`` are indices into ``tag_ids``."""
    user: np.ndarray  # [P] user index (the data set's)
    item: np.ndarray  # [P] item index
    tags: list  # [P] int arrays, sorted
    split: np.ndarray  # [P] "train" | "holdout" | "test"
    tag_ids: np.ndarray  # [T] tag strings (the vocabulary after min_tag_count)
    num_users: int
    num_items: int

    @property
    def num_tags(self):
        return len(self.tag_ids)

    def rows(self, split):
        return np.flatnonzero(self.split == split)

    def new_image(self, rows):
        """Whether each post of ``rows`` shows an item no training post has."""
        trained = np.zeros(self.num_items, bool)
        trained[self.item[self.rows("train")]] = True
        return ~trained[self.item[rows]]

    def padded_tags(self, rows):
        """Tags of ``rows`` as ``[len(rows), max tags]`` int32, padded with -1."""
        width = max(1, max((len(self.tags[r]) for r in rows), default=1))
        out = np.full((len(rows), width), -1, np.int32)
        for n, r in enumerate(rows):
            out[n, :len(self.tags[r])] = self.tags[r]
        return out

    def trained_items(self):
        """Items with at least one training post (they have a learned vector, features: embedding)."""
        mask = np.zeros(self.num_items, bool)
        mask[self.item[self.rows("train")]] = True
        return mask

    def trained_users(self):
        """Users with at least one training post (they have a learned embedding)."""
        mask = np.zeros(self.num_users, bool)
        mask[self.user[self.rows("train")]] = True
        return mask


def build_posts(dataset, section):
    """The posts of ``dataset`` under config section ``model.cnn_permlp``."""
    frame = dataset.post_tags
    if frame is None or not len(frame):
        raise DataError(dataset.path, "this data set has no post_tags.tsv (user, item, tag): a tag recommender "
                                      "needs posts with tags")
    counts = np.bincount(frame["tag"].to_numpy(np.int64), minlength=len(dataset.tag_ids))
    kept = counts >= section.min_tag_count
    if not kept.any():
        raise DataError(dataset.path, f"no tag is used ≥ model.cnn_permlp.min_tag_count = {section.min_tag_count} "
                                      f"times (most used: {int(counts.max())})")
    new_index = np.cumsum(kept) - 1
    frame = frame[kept[frame["tag"].to_numpy(np.int64)]]
    tag_ids = np.asarray(dataset.tag_ids)[kept]
    frame = frame.assign(tag=new_index[frame["tag"].to_numpy(np.int64)]).sort_values(["user", "item", "tag"])
    grouped = frame.groupby(["user", "item"], sort=True)["tag"].apply(lambda s: np.asarray(s, np.int32))
    users = np.asarray([k[0] for k in grouped.index], np.int64)
    items = np.asarray([k[1] for k in grouped.index], np.int64)
    split = split_posts(users, section)
    return Posts(user=users, item=items, tags=list(grouped.values), split=split, tag_ids=tag_ids,
                 num_users=dataset.num_users, num_items=dataset.num_items)


def split_posts(users, section):
    """``"train" | "holdout" | "test"`` per post: leave-posts-out per user, seeded."""
    rng = np.random.default_rng(section.split_seed)
    split = np.full(len(users), "train", dtype=object)
    order = np.argsort(users, kind="stable")
    bounds = np.flatnonzero(np.diff(users[order])) + 1
    for rows in np.split(order, bounds):
        if len(rows) < section.min_user_posts:
            continue
        rows = rows[rng.permutation(len(rows))]
        n_test = section.test_posts if section.test_posts else int(round(section.test_fraction * len(rows)))
        n_test = min(max(n_test, 1 if section.test_fraction or section.test_posts else 0), len(rows) - 1)
        split[rows[:n_test]] = "test"
        rest = rows[n_test:]
        n_hold = int(round(section.holdout_fraction * len(rest)))
        if section.holdout_fraction and len(rest) >= 3:
            n_hold = min(max(n_hold, 1), len(rest) - 1)
        else:
            n_hold = 0
        split[rest[:n_hold]] = "holdout"
    return split.astype(str)
