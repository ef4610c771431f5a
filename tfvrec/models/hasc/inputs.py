"""HASC's inputs from a data set: the capped neighbour lists L_a (uploads) and S_a
(followees) in CSR form, and the visual features F_i, F_a (Wu et al., eq. 6)."""
import numpy as np


def capped_lists(owners, members, num_owners, cap, seed):
    """Ragged lists (``owners[k]`` has member ``members[k]``) in CSR form, capped at ``cap``.

    Returns ``(flat_members int64 [n], row_splits int64 [num_owners + 1])``: owner a's
    members (sorted) are ``flat_members[row_splits[a]:row_splits[a + 1]]``. Lists longer
    than ``cap`` keep a random subset drawn with ``seed``.
    """
    owners = np.asarray(owners, np.int64)
    members = np.asarray(members, np.int64)
    order = np.lexsort((members, owners))
    owners, members = owners[order], members[order]
    bounds = np.searchsorted(owners, np.arange(num_owners + 1))
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(num_owners):
        row = members[bounds[a]:bounds[a + 1]]
        if len(row) > cap:
            row = np.sort(rng.choice(row, cap, replace=False))
        rows.append(row)
    lengths = np.array([len(r) for r in rows], np.int64)
    flat = np.concatenate(rows) if rows else np.empty(0, np.int64)
    return flat.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def neighbour_lists(dataset, config):
    """``(uploads, followees)`` of `dataset` as `capped_lists` (L_a: items whose creator is a;
    S_a: users a follows), capped by ``model.hasc.max_uploads`` / ``max_followees``."""
    c = config.model.hasc
    creators = dataset.item_creator
    has = creators >= 0
    uploads = capped_lists(creators[has], np.flatnonzero(has), dataset.num_users, c.max_uploads,
                           seed=[config.runtime.seed, 1])
    social = dataset.social
    if social is None:
        social_users = social_followed = np.empty(0, np.int64)
    else:
        keep = social["user"].values != social["followed"].values  # following oneself says nothing
        social_users, social_followed = social["user"].values[keep], social["followed"].values[keep]
    followees = capped_lists(social_users, social_followed, dataset.num_users, c.max_followees,
                             seed=[config.runtime.seed, 2])
    return uploads, followees


def visual_features(dataset, config):
    """``(F_i [num_items, f], F_a [num_users, f])`` with F_a the mean of a's liked images (eq. 6), or Nones."""
    if not config.data.features:
        return None, None
    items = dataset.features(config.data.features).astype(np.float32)
    train = dataset.split("train")
    sums = np.zeros((dataset.num_users, items.shape[1]), np.float64)
    np.add.at(sums, train["user"].values, items[train["item"].values])
    counts = np.bincount(train["user"].values, minlength=dataset.num_users)[:, None]
    return items, (sums / np.maximum(counts, 1)).astype(np.float32)
