import math

import numpy as np
import pytest
import tensorflow as tf

from tfvrec.losses import PairwiseHingeLoss, PairwiseLogisticLoss
from tfvrec.tasks import PairwiseAccuracy, PairwiseRankingTask


def softplus(x):
    return math.log1p(math.exp(x))


def test_logistic_loss_golden_values():
    # One list [positive, neg, neg]: softplus(-(2-1)) + softplus(-(2-0.5)).
    loss = PairwiseLogisticLoss(reduction="none")([[1.0, 0.0, 0.0]], [[2.0, 1.0, 0.5]])
    assert loss.numpy()[0] == pytest.approx(softplus(-1.0) + softplus(-1.5), rel=1e-6)


def test_hinge_loss_golden_values_and_margin():
    loss = PairwiseHingeLoss(margin=1.0, reduction="none")([[1.0, 0.0, 0.0]], [[2.0, 1.5, 0.5]])
    assert loss.numpy()[0] == pytest.approx(0.5)
    loss = PairwiseHingeLoss(margin=2.0, reduction="none")([[1.0, 0.0, 0.0]], [[2.0, 1.5, 0.5]])
    assert loss.numpy()[0] == pytest.approx(1.5 + 0.5)


def test_graded_labels_padding_and_mean_reduction():
    # Labels 2 > 1 > 0 form three pairs; label -1 (padding) forms none.
    scores = [[0.0, 0.0, 0.0, 100.0]]
    unreduced = PairwiseLogisticLoss(reduction="none")([[2.0, 1.0, 0.0, -1.0]], scores)
    assert unreduced.numpy()[0] == pytest.approx(3 * math.log(2.0), rel=1e-6)
    batch = PairwiseLogisticLoss()([[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])
    assert batch.numpy() == pytest.approx((softplus(-1.0) + softplus(1.0)) / 2, rel=1e-6)


def test_list_reduction_mean_golden_values():
    # Post-wise BPR (CNN-PerMLP eq. 8): two positives, two negatives, one padded slot: the mean
    # over the 4 (t+, t-) pairs; a list without a pair gives 0, not NaN.
    scores = [[2.0, 0.5, 1.0, -1.0, 7.0], [1.0, 2.0, 3.0, 4.0, 5.0]]
    labels = [[1.0, 1.0, 0.0, 0.0, -1.0], [-1.0, -1.0, 0.0, 0.0, -1.0]]
    loss = PairwiseLogisticLoss(list_reduction="mean", reduction="none")(labels, scores).numpy()
    pairs = [2.0 - 1.0, 2.0 + 1.0, 0.5 - 1.0, 0.5 + 1.0]
    assert loss[0] == pytest.approx(sum(softplus(-d) for d in pairs) / 4, rel=1e-6)
    assert loss[1] == 0.0
    summed = PairwiseLogisticLoss(reduction="none")(labels, scores).numpy()
    assert summed[0] == pytest.approx(4 * loss[0], rel=1e-6)
    with pytest.raises(ValueError, match="list_reduction"):
        PairwiseLogisticLoss(list_reduction="max")
    assert PairwiseLogisticLoss.from_config(PairwiseLogisticLoss(list_reduction="mean").get_config()
                                            ).list_reduction == "mean"


def test_gradient_pushes_positive_up_and_negative_down():
    scores = tf.Variable([[0.3, 0.3]])
    with tf.GradientTape() as tape:
        loss = PairwiseLogisticLoss()([[1.0, 0.0]], scores)
    grad = tape.gradient(loss, scores).numpy()[0]
    assert grad[0] < 0 < grad[1]


@pytest.mark.parametrize("cls,kwargs", [(PairwiseLogisticLoss, {"temperature": 0.5}),
                                        (PairwiseHingeLoss, {"margin": 0.3})])
def test_losses_serialize(cls, kwargs):
    loss = cls(**kwargs)
    restored = tf.keras.losses.deserialize(tf.keras.losses.serialize(loss))
    assert type(restored) is cls and restored.get_config() == loss.get_config()
    y_true, y_pred = [[1.0, 0.0, 0.0]], [[0.2, 0.4, -1.0]]
    assert restored(y_true, y_pred).numpy() == pytest.approx(loss(y_true, y_pred).numpy())


def test_loss_works_in_compiled_keras_model_and_reloads(tmp_path):
    inputs = tf.keras.Input((3,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(inputs))
    model.compile(optimizer="adam", loss=PairwiseLogisticLoss())
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.tile([[1.0, 0.0, 0.0]], (8, 1)).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = tf.keras.models.load_model(tmp_path / "m.keras")
    assert reloaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


def test_invalid_temperature():
    with pytest.raises(ValueError, match="temperature"):
        PairwiseLogisticLoss(temperature=0.0)


def test_task_returns_mean_loss_and_pairwise_accuracy():
    accuracy = PairwiseAccuracy()
    task = PairwiseRankingTask(metrics=[accuracy])
    labels = tf.constant([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    scores = tf.constant([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0]])
    loss = task(labels, scores)
    expected = (softplus(-1.0) + softplus(1.0) + softplus(0.0) + softplus(-1.0)) / 2
    assert loss.numpy() == pytest.approx(expected, rel=1e-6)
    # Pairs ordered right: (1>0) yes, (1>2) no, (1=1) half, (1>0) yes → 2.5 / 4.
    assert accuracy.result().numpy() == pytest.approx(2.5 / 4)


def test_lazy_adam_matches_adam_on_touched_rows_and_leaves_others():
    from tfvrec.training.lazy_adam import LazyAdam
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    rows = tf.constant([1, 3, 1])
    results = {}
    for name, optimizer in (("lazy", LazyAdam(0.1)), ("adam", tf.keras.optimizers.Adam(0.1))):
        variable = tf.Variable(table)
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.gather(variable, rows)))
            optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
        results[name] = variable.numpy()
    # Rows touched every step follow Adam exactly; untouched rows never move.
    np.testing.assert_allclose(results["lazy"][[1, 3]], results["adam"][[1, 3]], rtol=1e-6)
    np.testing.assert_array_equal(results["lazy"][[0, 2]], table[[0, 2]])
