"""BPR-MF: hand-worked scores and losses, losses chosen by config, save → restore equals the trained model."""
import numpy as np
import pytest
import tensorflow as tf

from tfvrec.inputs import bootstrap_pairs
from tfvrec import config as config_lib
from tfvrec.models.bpr.model import BPRMF, create

from planted import planted_dataset


def hand_set_model(l2=0.0, loss="logistic", margin=1.0):
    """Two users, two items, D = 2, with the weights below."""
    config = config_lib.get_experiment("bpr")
    config.model.bpr.embedding_dim, config.model.bpr.l2 = 2, l2
    config.model.bpr.loss, config.model.bpr.margin = loss, margin
    dataset = type("Sizes", (), {"num_users": 2, "num_items": 2})()
    model = create(config, dataset)
    model(model.example_input())
    model.user_model.get_layer("user_embedding").embeddings.assign([[1.0, 2.0], [0.0, -1.0]])
    model.item_model.get_layer("item_embedding").embeddings.assign([[3.0, -1.0], [0.5, 0.5]])
    model.item_model.get_layer("item_bias").embeddings.assign([[0.5], [-1.0]])
    return model


def test_score_is_the_dot_product_plus_item_bias_worked_by_hand():
    model = hand_set_model()
    # user 0: [1, 2]·[3, -1] + 0.5 = 1.5 and [1, 2]·[0.5, 0.5] − 1 = 0.5
    # user 1: [0, -1]·[3, -1] + 0.5 = 1.5 and [0, -1]·[0.5, 0.5] − 1 = −1.5
    np.testing.assert_allclose(model.score_all(np.array([0, 1])), [[1.5, 0.5], [1.5, -1.5]], atol=1e-6)
    np.testing.assert_allclose(model.score(np.array([0]), np.array([[1, 0, 1]])), [[0.5, 1.5, 0.5]], atol=1e-6)


def test_bpr_loss_and_l2_worked_by_hand():
    batch = {"user": tf.constant([0], tf.int64), "positive": tf.constant([0], tf.int64),
             "negatives": tf.constant([[1]], tf.int64)}
    # x_ui − x_uj = 1.5 − 0.5 = 1: −ln σ(1) = ln(1 + e^−1) = 0.3132617
    assert float(hand_set_model().compute_loss(batch)) == pytest.approx(0.3132617, abs=1e-6)
    # λ = 0.1 on this triple's vectors [p_u, 1], [q_i, b_i], [q_j, b_j]: 6 + 10.25 + 1.5 = 17.75
    assert float(hand_set_model(l2=0.1).compute_loss(batch)) == pytest.approx(0.3132617 + 1.775, abs=1e-5)
    # The hinge loss chosen by config: max(0, m − 1), m = 2
    assert float(hand_set_model(loss="hinge", margin=2.0).compute_loss(batch)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(config_lib.ConfigError, match="model.bpr.loss' must be one of"):
        config_lib.load_config(sets=["model.bpr.loss=softmax"])


def test_save_and_restore_give_the_trained_models_scores(tmp_path):
    """tfrs' save/restore check: the restored weights score exactly like the trained in-memory model."""
    dataset = _planted(tmp_path)
    config = config_lib.load_config(sets=["model.bpr.embedding_dim=8", "trainer.batch_size=64"])
    tf.keras.utils.set_random_seed(0)
    model = create(config, dataset)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
    ds, _ = bootstrap_pairs(dataset, config.trainer, seed=0)
    history = model.fit(ds, steps_per_epoch=30, epochs=2, verbose=0).history["loss"]
    assert history[1] < history[0]
    trained = model.score_all(np.arange(dataset.num_users))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = create(config, dataset)
    restored(restored.example_input())
    assert not np.array_equal(restored.score_all(np.arange(dataset.num_users)), trained)
    tf.train.Checkpoint(model=restored).restore(path).expect_partial()
    np.testing.assert_array_equal(restored.score_all(np.arange(dataset.num_users)), trained)
    assert isinstance(restored, BPRMF)


def _planted(tmp_path):
    from tfvrec.data.dataset import load_dataset
    return load_dataset(planted_dataset(str(tmp_path)))


def _bootstrap(seed, num_items=1000, batch_size=64, negatives=4):
    import types

    import pandas as pd

    # User 0 likes items 0-2 of 1000; users 1-3 like one item each.
    train = pd.DataFrame({"user": [0, 0, 0, 1, 2, 3], "item": [0, 1, 2, 5, 6, 7]})
    dataset = types.SimpleNamespace(split=lambda name: train, num_items=num_items)
    trainer = types.SimpleNamespace(batch_size=batch_size, negatives_per_positive=negatives, steps_per_epoch=0)
    ds, steps = bootstrap_pairs(dataset, trainer, seed)
    return ds, steps


def test_bootstrap_batches_are_a_pure_function_of_seed_and_step():
    ds, steps = _bootstrap(seed=3)
    assert steps == 1  # ⌈6 pairs / 64⌉
    first = [b for b in ds.take(3).as_numpy_iterator()]
    again = [b for b in _bootstrap(seed=3)[0].take(3).as_numpy_iterator()]
    skipped = next(_bootstrap(seed=3)[0].skip(2).as_numpy_iterator())  # what a resumed run reads
    other = next(_bootstrap(seed=4)[0].as_numpy_iterator())
    for key in ("user", "positive", "negatives"):
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(skipped[key], first[2][key])
    assert not np.array_equal(first[0]["negatives"], first[1]["negatives"])
    assert not np.array_equal(other["negatives"], first[0]["negatives"])
    # Positives are training pairs; users and positives agree row by row.
    pairs = {(0, 0), (0, 1), (0, 2), (1, 5), (2, 6), (3, 7)}
    for batch in first:
        assert {(int(u), int(i)) for u, i in zip(batch["user"], batch["positive"])} <= pairs


def test_bootstrap_negatives_avoid_the_users_training_positives():
    ds, _ = _bootstrap(seed=0, num_items=20, batch_size=512, negatives=8)
    hits = drawn = 0
    liked = {0: {0, 1, 2}, 1: {5}, 2: {6}, 3: {7}}
    for batch in ds.take(10).as_numpy_iterator():
        for user, negatives in zip(batch["user"], batch["negatives"]):
            hits += sum(int(j) in liked[int(user)] for j in negatives)
            drawn += len(negatives)
    # Without the exclusion ≈ 10% of draws (3 of 20 items for half the rows, 1 of 20 for the rest) would hit
    # a positive; two redraws leave (3/20)³ ≈ 0.3% for user 0 and 0.01% for the others.
    assert drawn == 10 * 512 * 8
    assert hits / drawn < 0.006
