"""The retrieval objective: tfrs' softmax over the global batch, the same on two replicas as on one device."""
import numpy as np
import pytest
import tensorflow as tf

from tfvrec.models.bpr.model import BPRMF
from tfvrec.objectives import RetrievalConfig
from tfvrec.tasks.retrieval import RetrievalTask


def test_in_batch_softmax_worked_by_hand():
    # Two queries, their positives, one extra negative; scores q·c: [[1, 0, 2], [0, 2, 0]]
    query = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    positives = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    extra = (tf.constant([[2.0, 0.0]]), tf.constant([9], tf.int64), None)
    task = RetrievalTask(remove_accidental_hits=False)
    loss = float(task(query, positives, tf.constant([3, 4], tf.int64), extra=extra))
    first = -np.log(np.exp(1) / (np.exp(1) + np.exp(0) + np.exp(2)))
    second = -np.log(np.exp(2) / (np.exp(0) + np.exp(2) + np.exp(0)))
    assert loss == pytest.approx((first + second) / 2, rel=1e-5)
    # log-Q: each logit minus log of its candidate's sampling probability.
    probability = tf.constant([0.5, 0.25])
    corrected = float(task(query, positives, tf.constant([3, 4], tf.int64), candidate_sampling_probability=probability))
    logits = np.array([[1, 0], [0, 2]]) - np.log([0.5, 0.25])
    expected = -np.mean([logits[r, r] - np.log(np.exp(logits[r]).sum()) for r in range(2)])
    assert corrected == pytest.approx(expected, rel=1e-5)
    # An accidental hit (a negative that is the query's own positive item) is masked out.
    hit = (tf.constant([[5.0, 0.0]]), tf.constant([3], tf.int64), None)
    masked = RetrievalTask(remove_accidental_hits=True)(query, positives, tf.constant([3, 4], tf.int64), extra=hit)
    unmasked = RetrievalTask(remove_accidental_hits=False)(query, positives, tf.constant([3, 4], tf.int64), extra=hit)
    assert float(masked) < float(unmasked)


def _train_once(strategy, cross_replica):
    rng = np.random.default_rng(0)
    batch = {"user": rng.integers(0, 30, 32), "positive": rng.integers(0, 40, 32),
             "negatives": rng.integers(0, 40, (32, 2))}
    tf.keras.utils.set_random_seed(1)
    options = RetrievalConfig(cross_replica=cross_replica)
    frequency = np.full(40, 1 / 40, np.float32)
    with strategy.scope():
        model = BPRMF(30, 40, embedding_dim=4, l2=0.1, init_stddev=0.3, retrieval=options, item_frequency=frequency,
                      task=RetrievalTask(cross_replica=cross_replica))
        model.compile(optimizer=tf.keras.optimizers.SGD(1.0))
    ds = tf.data.Dataset.from_tensors({k: tf.constant(v, tf.int64) for k, v in batch.items()})
    loss = model.fit(ds, epochs=1, verbose=0).history["loss"][0]
    return loss, [w.numpy() for w in model.user_model.weights + model.item_model.weights]


@pytest.mark.fresh_process
def test_two_replicas_gather_candidates_and_match_one_device():
    one_loss, one = _train_once(tf.distribute.get_strategy(), cross_replica=True)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    loss, two = _train_once(mirrored, cross_replica=True)
    assert loss == pytest.approx(one_loss, rel=1e-5)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # tfrs' own per-replica softmax sees half the in-batch negatives: another objective, another update.
    _, per_replica = _train_once(mirrored, cross_replica=False)
    assert max(np.abs(a - b).max() for a, b in zip(one, per_replica)) > 1e-3


def test_curatornet_retrieval_loss_is_the_softmax_over_the_batch_positives_and_negatives():
    from tfvrec.models.curatornet.model import CuratorNet
    rng = np.random.default_rng(0)
    content = rng.normal(size=(8, 5)).astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    model = CuratorNet(content, profile_splits=[0, 2], profile_items=[0, 1], item_units=4, profile_units=6, l2=0.0,
                       task=RetrievalTask())
    model.retrieval = RetrievalConfig(logq_correction=False)
    model({"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)})
    batch = {"profile": tf.constant([[0, 1], [2, -1]], tf.int64), "positive": tf.constant([3, 4], tf.int64),
             "negative": tf.constant([5, 6], tf.int64)}
    phi = model.item_model(content).numpy()
    users = np.stack([model.profile_model(tf.ragged.constant([phi[[0, 1]]], ragged_rank=1)).numpy()[0],
                      model.profile_model(tf.ragged.constant([phi[[2]]], ragged_rank=1)).numpy()[0]])
    logits = users @ phi[[3, 4, 5, 6]].T  # candidates: both positives, then both triplets' negatives
    expected = -np.mean([logits[r, r] - np.log(np.exp(logits[r]).sum()) for r in range(2)])
    assert float(model.compute_loss(batch)) == pytest.approx(expected, rel=1e-5)
