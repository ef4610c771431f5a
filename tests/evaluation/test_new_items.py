"""The new_items protocol and the candidate pool of `protocols.evaluate`: golden values by hand, the pool's
rules, the pool the evaluator computes, and a run judged on items it never trained on."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from tfvrec import config as config_lib
from tfvrec.data import splits
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.evaluation import baselines, evaluator, protocols


class Fixed:
    """A scorer with a fixed score per (user, item); records every item it was asked about."""

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float64)
        self.asked = {}

    def score(self, users, items):
        for user, row in zip(users, items):
            self.asked.setdefault(int(user), set()).update(int(i) for i in row)
        return self.table[np.asarray(users)[:, None], items]


# 6 items, 3 users. Training: u0 {0, 1}, u1 {1, 2}, u2 {0}: items 0, 1, 2 are warm, the pool is {3, 4, 5}.
TRAIN = {0: [0, 1], 1: [1, 2], 2: [0]}
HELDOUT = {0: [2, 3], 1: [5], 2: [1]}  # u0's item 2 and u2's item 1 are warm: dropped; u2 is left with none
SCORES = [[9, 8, 7, 2, 5, 1],
          [0, 0, 0, 3, 1, 6],
          [1, 2, 3, 4, 5, 6]]


def test_new_items_golden_values_by_hand():
    scorer = Fixed(SCORES)
    result = protocols.evaluate(scorer, HELDOUT, TRAIN, 6, "new_items", ks=(1, 2), candidate_pool=np.array([3, 4, 5]))
    # u0 ranks the pool 4 (5) > 3 (2) > 5 (1): its held-out item 3 is second. u1: 5 (6) > 3 (3) > 4 (1): first.
    # HR@1 = (0 + 1) / 2; HR@2 = 1; nDCG@2 = (1/log2(3) + 1) / 2; AUC: u0 beats 5 not 4 = 1/2, u1 = 1.
    expected = {"hr@1": 0.5, "hr@2": 1.0, "recall@1": 0.5, "recall@2": 1.0, "ndcg@1": 0.5,
                "ndcg@2": (1 / np.log2(3) + 1) / 2, "precision@2": 0.5, "auc": 0.75}
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value), name
    assert result.protocol == "new_items" and result.repeats == 1 and result.num_users == 2
    assert result.info["heldout_outside_pool"] == 2 and result.info["users_skipped_outside_pool"] == 1
    assert result.info["candidate_pool_size"] == 3 and result.info["users_skipped_no_heldout"] == 0
    assert result.describe_protocol() == "new_items, single run"
    # The mixed view over the whole catalogue keeps the warm held-out items: u0 ranks 2 (7) > 4 > 3 > 5
    # among {2, 3, 4, 5}, u1 ranks 5 first among {0, 3, 4, 5}, u2 ranks 1 (2) fifth among {1, .., 5}.
    full = protocols.evaluate(Fixed(SCORES), HELDOUT, TRAIN, 6, "full", ks=(1,))
    assert full.num_users == 3 and full.metrics["hr@1"] == pytest.approx(2 / 3)


def test_a_scorer_without_score_all_is_asked_about_pool_items_only():
    scorer = Fixed(SCORES)
    protocols.evaluate(scorer, HELDOUT, TRAIN, 6, "new_items", ks=(1,), candidate_pool=[5, 3, 4, 4])
    assert scorer.asked == {0: {3, 4, 5}, 1: {3, 4, 5}}  # (the pool as a list, unsorted, repeated: the same)


def test_new_items_needs_a_pool_and_a_pool_must_be_item_indices():
    with pytest.raises(ValueError, match="new_items protocol ranks among the items without a training interaction"):
        protocols.evaluate(Fixed(SCORES), HELDOUT, TRAIN, 6, "new_items")
    with pytest.raises(ValueError, match=r"candidate_pool: user 0 has item 6, outside \[0, 6\)"):
        protocols.evaluate(Fixed(SCORES), HELDOUT, TRAIN, 6, "full", candidate_pool=[3, 6])
    with pytest.raises(ValueError, match="candidate_pool must be a 1-D array of item indices or a mapping"):
        protocols.evaluate(Fixed(SCORES), HELDOUT, TRAIN, 6, "full", candidate_pool=[[3], [4]])
    assert protocols.parse_protocol(" New_Items ").name == "new_items"
    with pytest.raises(ValueError, match="takes no number of negatives"):
        protocols.ProtocolSpec("new_items", 5)


def test_per_user_pool_and_a_user_missing_from_it():
    pools = {0: [2, 3], 1: [4, 5]}  # u2 has no pool: skipped, counted
    result = protocols.evaluate(Fixed(SCORES), HELDOUT, TRAIN, 6, "full", ks=(1,), candidate_pool=pools)
    # u0 keeps both held-out items (2 and 3 are in its pool) and ranks 2 (7) over 3; u1 ranks 5 over 4.
    assert result.num_users == 2 and result.metrics["hr@1"] == 1.0 and result.metrics["auc"] == 1.0
    assert result.info["heldout_outside_pool"] == 1 and result.info["users_skipped_outside_pool"] == 1
    assert result.info["candidate_pool_size"] == 2.0


def _random_case(num_items=300, users=40, seed=0):
    rng = np.random.default_rng(seed)
    train = {u: rng.choice(num_items, 20, replace=False) for u in range(users)}
    heldout = {u: np.setdiff1d(rng.choice(num_items, 3, replace=False), train[u]) for u in range(users)}
    return train, heldout


@pytest.mark.parametrize("protocol", ["full", "sampled:30", "candidates:50"])
def test_a_pool_of_every_item_changes_nothing(protocol):
    train, heldout = _random_case()
    scorer = baselines.RandomScorer(seed=3, num_items=300)
    plain = protocols.evaluate(scorer, heldout, train, 300, protocol, ks=(5, 10), repeats=3, seed=1)
    pooled = protocols.evaluate(scorer, heldout, train, 300, protocol, ks=(5, 10), repeats=3, seed=1,
                                candidate_pool=np.arange(300))
    assert pooled.metrics == plain.metrics and pooled.info["heldout_outside_pool"] == 0


@pytest.mark.parametrize("protocol", ["sampled:30", "candidates:50"])
def test_sampled_negatives_come_from_the_pool_only(protocol):
    train, heldout = _random_case()
    pool = np.arange(0, 300, 3)  # every third item
    scorer = Fixed(np.random.default_rng(0).random((40, 300)))
    result = protocols.evaluate(scorer, heldout, train, 300, protocol, ks=(5,), repeats=2, candidate_pool=pool)
    for user, asked in scorer.asked.items():
        assert asked <= set(pool.tolist()) and not asked & set(train[user]) - set(heldout[user])
    kept = sum(int(np.isin(h, pool).sum()) for h in heldout.values())
    assert result.info["heldout_outside_pool"] == sum(len(h) for h in heldout.values()) - kept
    # 100 pool items, a user knows ~7 of them: 30 negatives are always there.
    assert result.info["users_short_of_negatives"] == 0


# -- the pool the evaluator computes -------------------------------------------------------------

def _world(path):
    """12 items; u0..u3 like items by parity; n0, n1 are content-only (no interaction at all)."""
    items = [f"i{k}" for k in range(10)] + ["n0", "n1"]
    rows = [(f"u{u}", f"i{k}", k) for u in range(4) for k in range(10) if k % 2 == u % 2]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return write_dataset(str(path), users=pd.DataFrame({"user": [f"u{u}" for u in range(4)]}),
                         items=pd.DataFrame({"item": items}), interactions={"train": frame}, overwrite=True)


def test_candidate_pool_is_the_items_without_a_training_interaction(tmp_path):
    ds = load_dataset(_world(tmp_path / "w"))
    assert evaluator.candidate_pool(ds, "full") is None and evaluator.candidate_pool(ds, "sampled:5") is None
    np.testing.assert_array_equal(evaluator.candidate_pool(ds, "new_items"), [10, 11])
    config = config_lib.ExperimentConfig()
    config.data.split, config.data.test_item_fraction, config.data.validation_item_fraction = "new_items", 0.2, 0.2
    config.trainer.validation_split = "train_holdout"
    splits.prepare_splits(config, ds)
    held = np.union1d(ds.heldout_items["test"], ds.heldout_items["validation"])
    assert len(held) == 4
    pool = evaluator.candidate_pool(ds, "new_items")
    np.testing.assert_array_equal(pool, np.union1d(held, [10, 11]))  # train_holdout items are warm too
    assert not np.isin(ds.split("train_holdout")["item"], pool).any()


def test_evaluate_scorers_reports_new_items_and_full_for_baselines(tmp_path):
    ds = load_dataset(_world(tmp_path / "w"))
    config = config_lib.ExperimentConfig()
    config.data.split, config.data.test_item_fraction, config.data.validation_item_fraction = "new_items", 0.3, 0.0
    splits.prepare_splits(config, ds)
    heldout = evaluator.heldout_by_user(ds.split("test"))
    scorers = evaluator.baseline_scorers(["popularity", "random"], ds, config, heldout)
    rows = evaluator.evaluate_scorers(scorers, ds, heldout, ["new_items", "full"], [1, 2], 1, 0, judged="test")
    by = {(name, r.protocol): r for name, r in rows}
    # 3 test items among 10; the pool is them and n0, n1 (5 items); popularity knows none of them: all tie.
    assert by[("popularity", "new_items")].info["candidate_pool_size"] == 5
    assert by[("popularity", "new_items")].info["heldout_outside_pool"] == 0
    assert by[("popularity", "full")].info.get("candidate_pool_size") is None
    assert by[("popularity", "new_items")].num_users == by[("popularity", "full")].num_users == len(heldout)


# -- a run judged on items it never trained on ---------------------------------------------------

def test_a_run_on_the_new_items_split_and_tfvrec_evaluate_on_new_items(tmp_path, capsys):
    from planted import planted_dataset
    from tfvrec import cli
    from tfvrec.training import trainer
    data = planted_dataset(str(tmp_path / "data"), num_items=120)
    model_dir = str(tmp_path / "run")
    config = config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={model_dir}", "data.split=new_items",
        "data.test_item_fraction=0.2", "data.validation_item_fraction=0.1", "runtime.distribution_strategy=default",
        "trainer.epochs=2", "trainer.batch_size=64", "model.bpr.embedding_dim=4", "trainer.verbose=0",
        "trainer.tensorboard_summaries=false", "trainer.validation_protocol=new_items",
        "trainer.validation_metric=recall@10", "eval.protocols=[new_items, full]", "eval.repeats=1",
        "eval.baselines=[popularity, random]"])
    rows = trainer.train(config)
    assert {r.protocol for _, r in rows} == {"new_items", "full"}
    new = dict((name, r) for name, r in rows if r.protocol == "new_items")
    assert new["bpr"].info["heldout_outside_pool"] == 0 and new["bpr"].info["candidate_pool_size"] > 0
    # A file of interactions on items the run never trained on (its test items) and on warm ones.
    ds = load_dataset(data)
    _, loaded, _ = trainer.load_run(model_dir)
    fresh, warm = loaded.heldout_items["test"], splits.training_items(loaded)
    lines = [f"{ds.user_ids[u]}\t{ds.item_ids[i]}\n" for u, i in [(0, fresh[0]), (1, fresh[1]), (2, warm[0])]]
    path = tmp_path / "new_posters.tsv"
    path.write_text("".join(lines))
    capsys.readouterr()
    assert cli.main(["evaluate", "--run", model_dir, "--test", str(path), "--protocol", "new_items"]) == 0
    assert "new_items" in capsys.readouterr().out
    metrics = json.load(open(os.path.join(model_dir, "metrics-new_posters.json")))
    first = metrics["results"][0]
    assert first["protocol"] == "new_items" and first["info"]["heldout_outside_pool"] == 1
    assert first["num_users"] == 2 and first["info"]["users_skipped_outside_pool"] == 1  # u2's only item is warm
