"""Content matrices (`tfvrec.data.content`) and the content k-NN baselines: golden scores on a hand-made
4-item data set, and metadata_knn far above popularity on new items where tastes follow the metadata."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tfvrec import config as config_lib
from tfvrec.data import content, splits
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.data.errors import DataError
from tfvrec.errors import ConfigError
from tfvrec.evaluation import evaluator
from tfvrec.evaluation.content_baselines import ItemKNNScorer

R = 1 / np.sqrt(2)


def _four(path, tags=True):
    """Items A [x], B [x, y], C [y], D [x] (D: content only); visual A (3, 4), B (1, 0), C (0, 2), D (4, 3).
    u0 liked A and C, u1 liked B, u2 nothing."""
    items = pd.DataFrame({"item": ["A", "B", "C", "D"], "artist": ["p", "q", "q", ""]})
    if tags:
        items["tags"] = [["x"], ["x", "y"], ["y"], ["x"]]
    features = {"lite": (["D", "C", "B", "A"], np.array([[4, 3], [0, 2], [1, 0], [3, 4]], np.float32))}
    return write_dataset(str(path), users=pd.DataFrame({"user": ["u0", "u1", "u2"]}), items=items,
                         interactions={"train": pd.DataFrame({"user": ["u0", "u0", "u1"], "item": ["A", "C", "B"]})},
                         features=features, overwrite=True)


def _config(k=0, features="lite"):
    config = config_lib.ExperimentConfig()
    config.eval.metadata_knn_k = config.eval.visual_knn_k = k
    config.data.features = features
    return config


def test_content_matrices(tmp_path):
    ds = load_dataset(_four(tmp_path / "d"))
    assert content.metadata_kind(ds) == "tags"
    assert list(content.metadata_columns(ds)) == ["x", "y"]
    np.testing.assert_array_equal(content.metadata_matrix(ds).toarray(), [[1, 0], [1, 1], [0, 1], [1, 0]])
    np.testing.assert_array_equal(content.metadata_matrix(ds, "artist").toarray(), [[1, 0], [0, 1], [0, 1], [0, 0]])
    np.testing.assert_allclose(content.feature_matrix(ds, "lite"), [[3, 4], [1, 0], [0, 2], [4, 3]])
    np.testing.assert_allclose(content.l2_normalize(content.feature_matrix(ds, "lite")),
                               [[0.6, 0.8], [1, 0], [0, 1], [0.8, 0.6]], rtol=1e-6)
    normalised = content.l2_normalize(content.metadata_matrix(ds, "artist"))
    assert sp.issparse(normalised)
    np.testing.assert_allclose(normalised.toarray()[3], [0, 0])  # no artist: a zero row, similar to nothing
    with pytest.raises(DataError, match="no feature set named"):
        content.feature_matrix(ds, "")
    with pytest.raises(DataError, match="feature set 'other' not found"):
        content.feature_matrix(ds, "other")
    no_tags = load_dataset(_four(tmp_path / "e", tags=False))
    assert content.metadata_kind(no_tags) == "artist"  # UGallery: the artist
    with pytest.raises(DataError, match="no item has a 'tags' value"):
        content.metadata_matrix(no_tags, "tags")


@pytest.mark.parametrize("k, expected", [
    # u0 (A, C) on B: cos(B, A) + cos(B, C) = 1/√2 + 1/√2 with k = 0 (all); the larger one only with k = 1.
    # On D: cos(D, A) + cos(D, C) = 1 + 0. u1 (B) on A, C, D: 1/√2 each. u2 (nothing): 0.
    (0, [[1, 2 * R, 1, 1], [R, 1, R, R], [0, 0, 0, 0]]),
    (1, [[1, R, 1, 1], [R, 1, R, R], [0, 0, 0, 0]]),
    (2, [[1, 2 * R, 1, 1], [R, 1, R, R], [0, 0, 0, 0]]),
])
def test_metadata_knn_golden_scores(tmp_path, k, expected):
    ds = load_dataset(_four(tmp_path / "d"))
    scorer = evaluator.baseline_scorers(["metadata_knn"], ds, _config(k), None)["metadata_knn"]
    np.testing.assert_allclose(scorer.score_all(np.array([0, 1, 2])), expected, rtol=1e-6)
    items = np.array([[3, 1], [0, 2], [1, 1]])
    np.testing.assert_allclose(scorer.score(np.array([0, 1, 2]), items),
                               np.take_along_axis(np.array(expected), items, axis=1), rtol=1e-6)
    assert "genres" in scorer.evaluation_note and "no learning" in scorer.evaluation_note


@pytest.mark.parametrize("k, expected_u0", [
    # Unit vectors A (.6, .8), B (1, 0), C (0, 1), D (.8, .6). u0 (A, C): B = .6 + 0, D = .96 + .6 (k = 0);
    # with k = 1 only the most similar: B = .6, D = .96.
    (0, [1.8, 0.6, 1.8, 1.56]),
    (1, [1.0, 0.6, 1.0, 0.96]),
])
def test_visual_knn_golden_scores(tmp_path, k, expected_u0):
    ds = load_dataset(_four(tmp_path / "d"))
    scorer = evaluator.baseline_scorers(["visual_knn"], ds, _config(k), None)["visual_knn"]
    np.testing.assert_allclose(scorer.score_all(np.array([0]))[0], expected_u0, rtol=1e-6)
    np.testing.assert_allclose(scorer.score(np.array([1]), np.array([[0, 3]])), [[0.6, 0.8]], rtol=1e-6)
    assert "visual features 'lite'" in scorer.evaluation_note


def test_configuration_mistakes():
    with pytest.raises(ConfigError, match="lists visual_knn.*data.features is empty"):
        config_lib.load_config(sets=["eval.baselines=[popularity, visual_knn]"])
    with pytest.raises(ConfigError, match=r"key 'eval.metadata_knn_k' must be ≥ 0, got -1"):
        config_lib.load_config(sets=["eval.metadata_knn_k=-1"])
    with pytest.raises(ConfigError, match=r"key 'eval.visual_knn_k' must be ≥ 0, got -3"):
        config_lib.load_config(sets=["eval.visual_knn_k=-3"])
    with pytest.raises(ValueError, match="k must be an integer ≥ 0"):
        ItemKNNScorer(np.eye(2), [[0]], k=-2)


def _genre_world(path, num_items=400, genres=8, num_users=200, likes=15, seed=0):
    """Tastes follow the metadata: each user likes items of their favourite genre (90%) and a few others;
    some items are popular across genres."""
    rng = np.random.default_rng(seed)
    genre = np.arange(num_items) % genres
    appeal = rng.pareto(1.5, num_items) + 1
    rows = []
    for u in range(num_users):
        own = np.flatnonzero(genre == u % genres)
        other = np.flatnonzero(genre != u % genres)
        picks = list(rng.choice(own, int(likes * 0.9), replace=False, p=appeal[own] / appeal[own].sum()))
        picks += list(rng.choice(other, likes - len(picks), replace=False, p=appeal[other] / appeal[other].sum()))
        rows += [(f"u{u}", f"i{i}") for i in picks]
    return write_dataset(str(path), users=pd.DataFrame({"user": [f"u{u}" for u in range(num_users)]}),
                         items=pd.DataFrame({"item": [f"i{i}" for i in range(num_items)],
                                             "tags": [[f"g{g}"] for g in genre]}),
                         interactions={"train": pd.DataFrame(rows, columns=["user", "item"])}, overwrite=True)


def test_metadata_knn_beats_popularity_on_new_items_when_tastes_follow_the_metadata(tmp_path):
    ds = load_dataset(_genre_world(tmp_path / "g"))
    config = config_lib.ExperimentConfig()
    config.data.split, config.data.test_item_fraction, config.data.validation_item_fraction = "new_items", 0.2, 0.0
    splits.prepare_splits(config, ds)
    heldout = evaluator.heldout_by_user(ds.split("test"))
    scorers = evaluator.baseline_scorers(["metadata_knn", "popularity", "random"], ds, config, heldout)
    rows = dict((name, r) for name, r in evaluator.evaluate_scorers(
        scorers, ds, heldout, ["new_items"], [20], 1, 0, judged="test"))
    recall = {name: r.metrics["recall@20"] for name, r in rows.items()}
    # 84 new items (79 of the 395 liked ones held out, 5 nobody liked), ~10 of each genre: the genre profile
    # ranks a user's genre first (90% of their likes); popularity knows none of the new items (no training
    # interaction: all tie) and ranks like random, about 20 / 84.
    assert rows["metadata_knn"].info["candidate_pool_size"] == 84
    assert recall["metadata_knn"] > 0.75 and recall["metadata_knn"] - recall["popularity"] > 0.45
    assert abs(recall["popularity"] - 20 / 84) < 0.08 and abs(recall["random"] - 20 / 84) < 0.08
    assert rows["popularity"].comparison["recall@20"]["p_value"] < 1e-6  # paired test against the first row


def test_a_run_table_says_what_content_each_baseline_row_uses(tmp_path, capsys):
    from tfvrec.evaluation import baselines, user_items
    ds = load_dataset(_genre_world(tmp_path / "g", num_users=40))
    config = config_lib.ExperimentConfig()
    config.data.split, config.data.validation_item_fraction = "new_items", 0.0
    config.runtime.model_dir = str(tmp_path / "run")
    config.eval.protocols, config.eval.baselines, config.eval.ks = ["new_items", "full"], ["metadata_knn"], [20]
    splits.prepare_splits(config, ds)
    model = baselines.RandomScorer(seed=1, num_items=ds.num_items)  # (any scorer stands for the run's model)
    rows = user_items.evaluate_run(config, ds, model)
    assert [(name, r.protocol) for name, r in rows] == [("bpr", "new_items"), ("metadata_knn", "new_items"),
                                                        ("bpr", "full"), ("metadata_knn", "full")]
    out = capsys.readouterr().out
    assert "  metadata_knn: content k-NN on item metadata — items.tsv tags (posters: genres)" in out
    saved = json.load(open(os.path.join(config.runtime.model_dir, "metrics.json")))
    assert list(saved["row_notes"]) == ["metadata_knn"]  # (the model's own note goes in the title)
    assert saved["row_notes"]["metadata_knn"].startswith("metadata_knn: content k-NN")
