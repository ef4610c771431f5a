"""Which interactions a run trains on, validates on and is judged on — and which it may know.

`prepare_splits` makes a loaded data set's splits those of a run: first ``data.split``,
then the ``train_holdout`` carve. It is idempotent and a pure function of the config and
the data set, so training and every later reload of the run (``tfvrec evaluate``,
``tfvrec export``) see identical splits.

``data.split``
    ``as_imported`` (the default): the splits the data set was written with.
    ``new_items``: an item-disjoint split (`new_items_split`). Every interaction of the data
    set (all its splits) is pooled; among the items that have interactions, a
    ``data.test_item_fraction`` of them become *test items* and a disjoint
    ``data.validation_item_fraction`` *validation items*, chosen by a hash of
    (``data.split_seed``, item id), so the choice depends neither on row order nor on the
    order of items.tsv. All interactions with test items form ``test``, with validation
    items ``validation``, the rest ``train``: training never sees a held-out item. Items
    nobody interacted with stay in the catalogue and in no split.
    **Post tags.** A post tag is something a user did with an item, so the tags users put
    on held-out items are held out with them: ``dataset.post_tags`` keeps only the tags on
    items that are not held out, and ``dataset.heldout_post_tags`` holds the others (the
    answers of a new-image tag task; nothing a model trains on reads it). Item metadata
    that comes with the item (``items.tsv``: tags, artist, creator, image, features) stays:
    a new item arrives with it.

A data set's splits follow a chronology: ``train`` < ``train_holdout`` < ``validation``
< ``test``. ``train_holdout`` exists only in memory: with ``trainer.validation_split:
train_holdout`` one training interaction per user (with ≥ 3) is carved out of ``train``
for early stopping, so model selection never sees a reported split (Flickr F.S's own
``likes_val.tsv`` is its ``validation`` split). The carve is a pure function of the seed.

Judging a split, a user's *known* items are their interactions in the splits before it:
never-liked candidates are drawn from outside them, and full ranking leaves them out.
Later splits stay unknown, so early stopping on ``validation`` learns nothing about
``test``. An explicit held-out file (``tfvrec evaluate --test FILE``) is judged against
every split of the data set.
"""
import dataclasses
import hashlib
import math
from typing import Dict, Mapping

import numpy as np
import pandas as pd
from absl import logging

from tfvrec.data.errors import DataError

HOLDOUT_SPLIT = "train_holdout"
CHRONOLOGY = ("train", HOLDOUT_SPLIT, "validation", "test")
SPLIT_KINDS = ("as_imported", "new_items")  # the values of data.split


def carve_train_holdout(dataset, seed):
    """Move one random training interaction per user (with ≥ 3) into split ``train_holdout``."""
    train = dataset.split("train")
    rng = np.random.default_rng(seed)
    counts = train.groupby("user")["item"].transform("size").values
    shuffled = train.assign(_r=rng.random(len(train)), _n=counts)
    pick = shuffled[shuffled["_n"] >= 3].sort_values("_r").drop_duplicates("user").index
    dataset.interactions[HOLDOUT_SPLIT] = train.loc[pick].reset_index(drop=True)
    dataset.interactions["train"] = train.drop(index=pick).reset_index(drop=True)
    return dataset.interactions[HOLDOUT_SPLIT]


# -- the new-items split ------------------------------------------------------------------------

@dataclasses.dataclass
class NewItemsSplit:
    """What `new_items_split` returns: the new splits and the held-out item indices (sorted)."""

    interactions: Dict[str, pd.DataFrame]  # "train", and "test" / "validation" when they hold any item
    test_items: np.ndarray
    validation_items: np.ndarray
    items_with_interactions: int


def item_keys(item_ids, seed):
    """A 64-bit key per item, a hash of (seed, external item id): the order `new_items_split` draws in."""
    return np.array([int.from_bytes(hashlib.blake2b(f"{int(seed)}\x00{item}".encode(), digest_size=8).digest(),
                                    "big") for item in item_ids], dtype=np.uint64)


def _count(fraction, total):
    return int(math.floor(fraction * total + 0.5))  # to the nearest (halves up, not to even)


def pooled_interactions(interactions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every interaction of every split in one frame (the columns all splits have; a row repeated
    in two splits, as Flickr F.S's few validation likes also in train, once)."""
    frames = [frame for frame in interactions.values()]
    if not frames:
        raise ValueError("no interactions to pool")
    columns = [c for c in frames[0].columns if all(c in frame.columns for frame in frames)]
    pooled = pd.concat([frame[columns] for frame in frames], ignore_index=True)
    return pooled.drop_duplicates(ignore_index=True)


def new_items_split(interactions, item_ids, test_fraction, validation_fraction, seed, where="<data set>"):
    """The item-disjoint split of ``interactions`` (split name → frame with ``user``, ``item``, ...).

    Pure: depends on the interactions as a set, the external ``item_ids`` (index → id), the
    fractions and the seed only. Of the ``n`` items with an interaction, the ``round(test_fraction
    × n)`` with the smallest `item_keys` are test items and the next ``round(validation_fraction ×
    n)`` validation items (a test fraction of 0 with validation items: no ``test`` split, every other item
    trains). Raises `DataError` (naming ``where``) when that leaves no held-out item, a test fraction > 0 no
    test item, or no training interaction.
    """
    if not (0 <= test_fraction < 1 and 0 <= validation_fraction < 1 and test_fraction + validation_fraction < 1):
        raise ValueError(f"fractions must be in [0, 1) with a sum < 1, got {test_fraction} and {validation_fraction}")
    pooled = pooled_interactions(interactions)
    items = np.unique(pooled["item"].to_numpy(np.int64))
    ids = np.asarray(item_ids, dtype=object)[items]
    keys = item_keys(ids, seed)
    order = items[sorted(range(len(items)), key=lambda n: (int(keys[n]), str(ids[n])))]
    n_test, n_validation = _count(test_fraction, len(items)), _count(validation_fraction, len(items))
    if n_test == 0 and (test_fraction > 0 or n_validation == 0):
        raise DataError(where, f"data.split new_items: data.test_item_fraction {test_fraction} of the "
                               f"{len(items)} items with interactions is no item; raise the fraction")
    test_items = np.sort(order[:n_test])
    validation_items = np.sort(order[n_test:n_test + n_validation])
    role = np.zeros(int(items.max()) + 1, dtype=np.int8)  # 0 train, 1 test, 2 validation
    role[test_items], role[validation_items] = 1, 2
    of_row = role[pooled["item"].to_numpy(np.int64)]
    out = {"train": pooled[of_row == 0].reset_index(drop=True)}
    if not len(out["train"]):
        raise DataError(where, f"data.split new_items: every one of the {len(items)} items with interactions is "
                               "held out; lower data.test_item_fraction / data.validation_item_fraction")
    for name, code in (("validation", 2), ("test", 1)):
        if (of_row == code).any():
            out[name] = pooled[of_row == code].reset_index(drop=True)
    return NewItemsSplit(interactions=out, test_items=test_items, validation_items=validation_items,
                         items_with_interactions=len(items))


def _apply_new_items(data_config, dataset):
    split = new_items_split(dataset.interactions, dataset.item_ids, data_config.test_item_fraction,
                            data_config.validation_item_fraction, data_config.split_seed, where=dataset.path)
    dataset.interactions = dict(split.interactions)
    dataset.heldout_items = {"test": split.test_items, "validation": split.validation_items}
    held = np.union1d(split.test_items, split.validation_items)
    heldout_tags = 0
    if dataset.post_tags is not None:
        on_held = np.isin(dataset.post_tags["item"].to_numpy(np.int64), held)
        dataset.heldout_post_tags = dataset.post_tags[on_held].reset_index(drop=True)
        dataset.post_tags = dataset.post_tags[~on_held].reset_index(drop=True)
        heldout_tags = int(on_held.sum())
    record = {"test_items": len(split.test_items), "validation_items": len(split.validation_items),
              "items_with_interactions": split.items_with_interactions,
              "interactions": {name: len(frame) for name, frame in split.interactions.items()},
              "heldout_post_tags": heldout_tags}
    logging.info("data.split new_items (seed %d): %d test items, %d validation items of %d with interactions; "
                 "%s", data_config.split_seed, record["test_items"], record["validation_items"],
                 record["items_with_interactions"],
                 ", ".join(f"{k} {v:,}" for k, v in record["interactions"].items()))
    return record


def _split_spec(data_config):
    kind = getattr(data_config, "split", "as_imported")
    if kind == "as_imported":
        return {"kind": kind}
    return {"kind": kind, "test_item_fraction": data_config.test_item_fraction,
            "validation_item_fraction": data_config.validation_item_fraction, "seed": data_config.split_seed}


def prepare_splits(config, dataset):
    """Make ``dataset``'s splits those of the run ``config`` describes: ``data.split``, then the
    ``train_holdout`` carve when ``trainer.validation_split`` asks for it. Idempotent (a second call
    changes nothing); the applied split and its counts are in ``dataset.metadata["prepared_split"]``.
    Returns ``dataset``."""
    spec = _split_spec(config.data)
    applied = dataset.metadata.get("prepared_split")
    if applied is None:
        if spec["kind"] not in SPLIT_KINDS:
            raise ValueError(f"unknown data.split {spec['kind']!r}; expected one of {SPLIT_KINDS}")
        record = _apply_new_items(config.data, dataset) if spec["kind"] == "new_items" else {}
        dataset.metadata["prepared_split"] = dict(spec, **record)
    elif {k: applied.get(k) for k in spec} != spec:
        raise ValueError(f"{dataset.path}: its splits were prepared with {applied}, not {spec}; load the data "
                         "set again for another split")
    if config.trainer.validation_split == HOLDOUT_SPLIT and HOLDOUT_SPLIT not in dataset.interactions:
        carve_train_holdout(dataset, config.runtime.seed)
    return dataset


def validation_frame(config, dataset):
    """The interactions early stopping validates on, or None (a getter: `prepare_splits` made them)."""
    name = config.trainer.validation_split
    if name == HOLDOUT_SPLIT and HOLDOUT_SPLIT not in dataset.interactions:
        raise ValueError(f"{dataset.path}: split '{HOLDOUT_SPLIT}' was not prepared (tfvrec.runs.prepare_dataset)")
    if name and name in dataset.interactions:
        return dataset.split(name)
    if name:
        logging.warning("No '%s' split in %s: training without validation or early stopping", name, dataset.path)
    return None


def known_splits(dataset, judged=None):
    """The splits whose interactions are known when ``judged`` is evaluated (None: an explicit file)."""
    present = [s for s in dataset.interactions if s not in CHRONOLOGY] + [s for s in CHRONOLOGY
                                                                           if s in dataset.interactions]
    if judged is None:
        return present
    if judged not in CHRONOLOGY:
        return [s for s in present if s != judged]
    earlier = CHRONOLOGY[:CHRONOLOGY.index(judged)]
    return [s for s in present if s in earlier]


def training_items(dataset):
    """Sorted indices of the items with an interaction in ``train`` or ``train_holdout``: what a model
    may have trained on. Every other item is new to it (the ``new_items`` protocol's pool)."""
    frames = [dataset.interactions[s]["item"].to_numpy(np.int64) for s in ("train", HOLDOUT_SPLIT)
              if s in dataset.interactions]
    return np.unique(np.concatenate(frames)) if frames else np.empty(0, np.int64)
