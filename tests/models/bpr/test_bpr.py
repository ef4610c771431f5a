"""BPR-MF: hand-worked scores and losses, losses chosen by config, save → restore equals the trained model."""
import numpy as np
import pytest
import tensorflow as tf

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
    model({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
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
    ds, _ = model.make_train_dataset(dataset, config.trainer, seed=0)
    history = model.fit(ds, steps_per_epoch=30, epochs=2, verbose=0).history["loss"]
    assert history[1] < history[0]
    trained = model.score_all(np.arange(dataset.num_users))
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = create(config, dataset)
    restored({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
    assert not np.array_equal(restored.score_all(np.arange(dataset.num_users)), trained)
    tf.train.Checkpoint(model=restored).restore(path).expect_partial()
    np.testing.assert_array_equal(restored.score_all(np.arange(dataset.num_users)), trained)
    assert isinstance(restored, BPRMF)


def _planted(tmp_path):
    from tfvrec.data.dataset import load_dataset
    return load_dataset(planted_dataset(str(tmp_path)))
