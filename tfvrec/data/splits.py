"""Which interactions a run trains on, validates on and is judged on — and which it may know.

A data set's splits follow a chronology: ``train`` < ``train_holdout`` < ``validation``
< ``test``. ``train_holdout`` exists only in memory: with ``trainer.validation_split:
train_holdout`` one training interaction per user (with ≥ 3) is carved out of ``train``
for early stopping, so model selection never sees a reported split (Flickr F.S's own
``likes_val.tsv`` is its ``validation`` split). The carve is a pure function of the seed
and is made the same way at training time and when a run is loaded again
(``tfvrec evaluate``, ``tfvrec export``), so both see identical splits.

Judging a split, a user's *known* items are their interactions in the splits before it:
never-liked candidates are drawn from outside them, and full ranking leaves them out.
Later splits stay unknown, so early stopping on ``validation`` learns nothing about
``test``. An explicit held-out file (``tfvrec evaluate --test FILE``) is judged against
every split of the data set.
"""
import numpy as np
from absl import logging

HOLDOUT_SPLIT = "train_holdout"
CHRONOLOGY = ("train", HOLDOUT_SPLIT, "validation", "test")


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


def prepare_splits(config, dataset):
    """Make the in-memory splits of a run (idempotent): the ``train_holdout`` carve when early stopping
    reads it. Called once per loaded data set, by `tfvrec.runs.prepare_dataset` only."""
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
