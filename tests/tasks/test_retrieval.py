"""The retrieval objective: tfrs' softmax over the global batch, the same on two replicas as on one device."""
import numpy as np
import pytest
import tensorflow as tf

from tfvrec.models.bpr.model import BPRMF
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
    frequency = np.full(40, 1 / 40, np.float32)
    with strategy.scope():
        model = BPRMF(30, 40, embedding_dim=4, l2=0.1, init_stddev=0.3,
                      task=RetrievalTask(cross_replica=cross_replica, frequency=frequency))
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
                       task=RetrievalTask())  # (no log-Q correction: no frequencies)
    model(model.example_input())
    batch = {"profile": tf.constant([[0, 1], [2, -1]], tf.int64), "positive": tf.constant([3, 4], tf.int64),
             "negative": tf.constant([5, 6], tf.int64)}
    phi = model.item_model(content).numpy()
    users = np.stack([model.profile_model(tf.ragged.constant([phi[[0, 1]]], ragged_rank=1)).numpy()[0],
                      model.profile_model(tf.ragged.constant([phi[[2]]], ragged_rank=1)).numpy()[0]])
    logits = users @ phi[[3, 4, 5, 6]].T  # candidates: both positives, then both triplets' negatives
    expected = -np.mean([logits[r, r] - np.log(np.exp(logits[r]).sum()) for r in range(2)])
    assert float(model.compute_loss(batch)) == pytest.approx(expected, rel=1e-5)


def test_the_factory_turns_a_sections_loss_into_its_task():
    """`tfvrec.tasks.build`: one factory for every model's ``loss`` (and its options)."""
    from types import SimpleNamespace

    from tfvrec import tasks
    from tfvrec.losses import PairwiseHingeLoss
    from tfvrec.objectives import RetrievalConfig
    hinge = tasks.build(SimpleNamespace(loss="hinge", margin=0.5), list_reduction="mean")
    assert isinstance(hinge, tasks.PairwiseRankingTask) and hinge.needs == "scores"
    assert isinstance(hinge._loss, PairwiseHingeLoss) and hinge._loss.margin == 0.5
    assert hinge._loss.list_reduction == "mean"
    pointwise = tasks.build(SimpleNamespace(loss="pointwise"))
    assert isinstance(pointwise, tasks.PointwiseTask) and pointwise.needs == "scores"
    dataset = SimpleNamespace(num_items=4, split=lambda name: {"item": __import__("pandas").Series([0, 0, 1, 3])})
    retrieval = tasks.build(SimpleNamespace(loss="retrieval", retrieval=RetrievalConfig(temperature=0.5)), dataset)
    assert retrieval.needs == "vectors"
    np.testing.assert_allclose(retrieval.frequency.numpy(), [0.5, 0.25, 0.0, 0.25])
    off = tasks.build(SimpleNamespace(loss="retrieval", retrieval=RetrievalConfig(logq_correction=False)), dataset)
    assert off.frequency is None


def test_pointwise_task_learns_an_offset_so_p_can_exceed_a_half():
    """TwoNets' p = σ(b + s): with scores s = −D ≤ 0 a classifier without b never says "like" (p ≤ ½)."""
    from tfvrec import tasks
    task = tasks.PointwiseTask()
    scores = tf.constant([[-0.1, -3.0], [-0.2, -2.5]])  # positive first: small distance, then the negative
    # Worked by hand at b = 0: Σ per row of softplus(−s+) + softplus(s−), mean over rows.
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    expected = np.mean([softplus(0.1) + softplus(-3.0), softplus(0.2) + softplus(-2.5)])
    assert float(task.compute(tasks.ScoredBatch(scores))) == pytest.approx(expected, rel=1e-6)
    optimizer = tf.keras.optimizers.SGD(1.0)
    for _ in range(200):
        with tf.GradientTape() as tape:
            loss = task.compute(tasks.ScoredBatch(scores))
        optimizer.apply_gradients(zip(tape.gradient(loss, [task.offset]), [task.offset]))
    assert float(tf.sigmoid(task.offset + scores[0, 0])) > 0.5 > float(tf.sigmoid(task.offset + scores[0, 1]))
