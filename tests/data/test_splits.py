"""data.split: new_items — the item-disjoint split — and `prepare_splits` (the one place splits are made)."""
import hashlib
import os

import numpy as np
import pandas as pd
import pytest

from tfvrec import config as config_lib
from tfvrec import runs
from tfvrec.data import splits
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError

from conftest import shared_data


def _world(path, num_items=40, content_only=("n1", "n2"), item_order=None, row_seed=None):
    """Items i0..i{num_items-1}, each liked by 1 + (k % 3) of 6 users (over train and test, as imported),
    plus content-only items nobody interacted with; post tags on i0..i9."""
    items = [f"i{k}" for k in range(num_items)] + list(content_only)
    if item_order is not None:
        items = [items[k] for k in item_order]
    rows = [(f"u{(k + j) % 6}", f"i{k}", 100 * k + j) for k in range(num_items) for j in range(1 + k % 3)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    if row_seed is not None:
        frame = frame.sample(frac=1, random_state=row_seed).reset_index(drop=True)
    is_test = frame["timestamp"] % 7 == 0
    tagged = range(min(10, num_items))
    tags = pd.DataFrame({"user": [f"u{k % 6}" for k in tagged], "item": [f"i{k}" for k in tagged],
                         "tag": ["good"] * len(tagged)})
    return write_dataset(str(path), users=pd.DataFrame({"user": [f"u{u}" for u in range(6)]}),
                         items=pd.DataFrame({"item": items, "tags": [["g"]] * len(items)}),
                         interactions={"train": frame[~is_test], "test": frame[is_test]}, post_tags=tags,
                         overwrite=True)


def _config(split="new_items", test=0.15, validation=0.15, seed=0, validation_split="validation"):
    config = config_lib.ExperimentConfig()
    config.data.split, config.data.split_seed = split, seed
    config.data.test_item_fraction, config.data.validation_item_fraction = test, validation
    config.trainer.validation_split = validation_split
    return config


def _ids(dataset, split):
    return set(dataset.item_ids[dataset.split(split)["item"]])


def _pairs(dataset):
    return {(dataset.user_ids[u], dataset.item_ids[i]) for frame in dataset.interactions.values()
            for u, i in zip(frame["user"], frame["item"])}


def test_new_items_split_is_item_disjoint_and_keeps_every_interaction(tmp_path):
    ds = load_dataset(_world(tmp_path / "w"))
    before = _pairs(ds)
    total = sum(len(f) for f in ds.interactions.values())
    splits.prepare_splits(_config(), ds)
    test, validation, train = _ids(ds, "test"), _ids(ds, "validation"), _ids(ds, "train")
    # 40 items with interactions: round(0.15 × 40) = 6 test items, 6 validation items, disjoint.
    assert len(test) == 6 and len(validation) == 6 and not test & validation
    assert not (test | validation) & train  # no held-out item in any training interaction
    assert train | test | validation == {f"i{k}" for k in range(40)}
    assert {"n1", "n2"} & (train | test | validation) == set() and ds.num_items == 42  # content-only: in no split
    assert _pairs(ds) == before and sum(len(f) for f in ds.interactions.values()) == total  # nothing lost
    assert sorted(ds.item_ids[ds.heldout_items["test"]]) == sorted(test)
    record = ds.metadata["prepared_split"]
    assert record["kind"] == "new_items" and record["test_items"] == 6 and record["items_with_interactions"] == 40
    # Every interaction with a test item is in test, whichever split it was imported in.
    assert set(ds.split("test")["item"]) == set(ds.heldout_items["test"])


def test_post_tags_on_held_out_items_are_held_out(tmp_path):
    ds = load_dataset(_world(tmp_path / "w"))
    splits.prepare_splits(_config(test=0.25, validation=0.25), ds)
    held = set(ds.heldout_items["test"]) | set(ds.heldout_items["validation"])
    tagged_held = [k for k in range(10) if ds.item_index([f"i{k}"])[0] in held]
    assert tagged_held  # (the world is such that some tagged item is held out, some is not)
    assert not set(ds.post_tags["item"]) & held
    assert sorted(ds.item_ids[ds.heldout_post_tags["item"]]) == sorted(f"i{k}" for k in tagged_held)
    assert len(ds.post_tags) + len(ds.heldout_post_tags) == 10


@pytest.mark.parametrize("num_items, fraction, expected", [(40, 0.15, 6), (37, 0.15, 6), (30, 0.15, 5),
                                                           (10, 0.25, 3), (3, 0.5, 2)])
def test_fractions_hold_to_rounding(tmp_path, num_items, fraction, expected):
    # 0.15 × 37 = 5.55 -> 6; 0.15 × 30 = 4.5 -> 5; 0.25 × 10 = 2.5 -> 3; 0.5 × 3 = 1.5 -> 2 (halves round up)
    ds = load_dataset(_world(tmp_path / "w", num_items=num_items))
    result = splits.new_items_split(ds.interactions, ds.item_ids, fraction, 0.0 if num_items == 3 else fraction, 1)
    assert len(result.test_items) == expected
    assert len(result.validation_items) == (0 if num_items == 3 else expected)
    assert ("validation" in result.interactions) == (num_items != 3)


def test_the_choice_depends_on_item_ids_and_seed_only(tmp_path):
    reference = load_dataset(_world(tmp_path / "a"))
    splits.prepare_splits(_config(), reference)
    # Rows shuffled and items.tsv in another order (so other item indices): the same held-out ids.
    order = list(np.random.default_rng(5).permutation(42))
    other = load_dataset(_world(tmp_path / "b", item_order=order, row_seed=3))
    assert list(other.item_ids) != list(reference.item_ids)
    splits.prepare_splits(_config(), other)
    for split in ("train", "validation", "test"):
        assert _ids(other, split) == _ids(reference, split)
    # Golden: the 6 items whose 64-bit blake2b of "<seed>\0<id>" is smallest (seed 0), the next 6 validation.
    keys = sorted((int.from_bytes(hashlib.blake2b(f"0\x00i{k}".encode(), digest_size=8).digest(), "big"), f"i{k}")
                  for k in range(40))
    assert _ids(reference, "test") == {i for _, i in keys[:6]} == set(['i0', 'i6', 'i8', 'i13', 'i14', 'i19'])
    assert _ids(reference, "validation") == {i for _, i in keys[6:12]}
    # Another seed, another choice.
    reseeded = load_dataset(_world(tmp_path / "a"))
    splits.prepare_splits(_config(seed=1), reseeded)
    assert _ids(reseeded, "test") != _ids(reference, "test")
    assert len(_ids(reseeded, "test")) == 6


def test_prepare_splits_is_idempotent_and_carves_the_holdout_after_the_split(tmp_path):
    ds = load_dataset(_world(tmp_path / "w"))
    config = _config(validation_split="train_holdout")
    splits.prepare_splits(config, ds)
    frames = {name: frame.copy() for name, frame in ds.interactions.items()}
    assert set(frames) == {"train", "train_holdout", "validation", "test"}
    # The carve takes training interactions only: no held-out item in train_holdout either.
    assert not _ids(ds, "train_holdout") & (_ids(ds, "test") | _ids(ds, "validation"))
    splits.prepare_splits(config, ds)
    assert splits.validation_frame(config, ds) is ds.interactions["train_holdout"]
    assert set(ds.interactions) == set(frames)
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(ds.interactions[name], frame)
    with pytest.raises(ValueError, match="prepared with"):
        splits.prepare_splits(_config(seed=7), ds)  # another split on the same loaded data set: a bug


def test_as_imported_is_the_default_and_changes_nothing(tmp_path):
    ds = load_dataset(_world(tmp_path / "w"))
    frames = {name: frame.copy() for name, frame in ds.interactions.items()}
    config = config_lib.ExperimentConfig()
    assert config.data.split == "as_imported"
    assert splits.validation_frame(config, ds) is None  # the world has no validation split
    assert set(ds.interactions) == set(frames) and ds.heldout_post_tags is None and not ds.heldout_items
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(ds.interactions[name], frame)


def test_too_few_items_is_one_clear_error(tmp_path):
    ds = load_dataset(_world(tmp_path / "w", num_items=3))
    with pytest.raises(DataError, match=r"data.test_item_fraction 0.1 of the 3 items with interactions is no item"):
        splits.prepare_splits(_config(test=0.1, validation=0.0), ds)


@pytest.mark.parametrize("sets, message", [
    (["data.split=items"], r"'data.split' must be one of \['as_imported', 'new_items'\], got 'items'"),
    (["data.split=new_items", "data.test_item_fraction=0", "data.validation_item_fraction=0"],
     r"data.test_item_fraction \+ data.validation_item_fraction must be > 0"),
    (["data.test_item_fraction=1.5"], r"'data.test_item_fraction' must be in \[0, 1\), got 1.5"),
    (["data.validation_item_fraction=-0.1"], r"'data.validation_item_fraction' must be in \[0, 1\)"),
    (["data.split=new_items", "data.test_item_fraction=0.6", "data.validation_item_fraction=0.4"],
     r"--set data.validation_item_fraction=0.4: data.test_item_fraction \+ data.validation_item_fraction must be"),
    (["data.split_seed=-1"], r"'data.split_seed' must be in \[0, 2\*\*32 - 1\]"),
])
def test_config_checks(sets, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.load_config(sets=sets)


def test_baseline_run_dir_ignores_unused_split_keys():
    config = config_lib.load_config()
    reseeded = config_lib.load_config(sets=["data.split_seed=4"])
    assert runs.baseline_run_dir("r", config, "b") == runs.baseline_run_dir("r", reseeded, "b")
    a = config_lib.load_config(sets=["data.split=new_items"])
    b = config_lib.load_config(sets=["data.split=new_items", "data.split_seed=4"])
    assert len({runs.baseline_run_dir("r", c, "b") for c in (config, a, b)}) == 3


def test_real_posters_likes_new_items_split(tmp_path):
    from tfvrec.data.importers import import_dataset
    raw = shared_data("movielens_posters")
    ds = load_dataset(import_dataset("movielens_posters", raw, str(tmp_path / "posters"), only_with_poster="true"))
    likes = sum(len(f) for f in ds.interactions.values())
    splits.prepare_splits(_config(), ds)
    test, validation, train = _ids(ds, "test"), _ids(ds, "validation"), _ids(ds, "train")
    interacted = len(test | validation | train)
    assert interacted == ds.num_items - 978  # 2,947 poster movies, 978 without a like (420 of them brand new)
    assert len(test) == len(validation) == int(np.floor(0.15 * interacted + 0.5))
    assert not (test | validation) & train and not test & validation
    assert sum(len(f) for f in ds.interactions.values()) == likes
    assert os.path.exists(ds.item_image[ds.heldout_items["test"][0]])


def test_a_run_judged_later_holds_out_validation_items_only(tmp_path):
    """data.test_item_fraction 0 with validation items: no test split, every item but the validation ones trains
    (a shipped new-items config, judged later on a file of new items); the validation items are the first of the
    hash order, the test items of the same seed with a test fraction."""
    ds = load_dataset(_world(tmp_path / "w"))
    splits.prepare_splits(_config(test=0.0, validation=0.2), ds)
    assert "test" not in ds.interactions and len(ds.heldout_items["test"]) == 0
    validation = set(ds.heldout_items["validation"])
    assert validation and not validation & set(ds.split("train")["item"])
    again = load_dataset(_world(tmp_path / "w2"))
    splits.prepare_splits(_config(test=0.2, validation=0.1), again)
    assert validation == set(again.heldout_items["test"])
