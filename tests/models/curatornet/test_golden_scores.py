"""CuratorNet scores on hand-set weights, worked out by hand."""
import numpy as np
import pytest

from tfvrec.models.curatornet.model import CuratorNet

SELU = 1.0507009873554805  # selu(x) = λx for x > 0 (Klambauer et al. 2017)


def test_curatornet_score_on_one_unit_towers_worked_by_hand():
    # One-unit towers with positive weights keep every selu in its linear part:
    # Φ(f) = λ·(1 · λ·(0.5 f)) = 0.5 λ² f; a one-item profile pools to [Φ, Φ] (mean ‖ max);
    # the profile tower gives λ·λ·λ·(1·Φ + 1·Φ) = 2 λ³ Φ; the score is Φ(P)·Φ(f_i) (eq. 2).
    content = np.array([[2.0], [4.0]], np.float32)
    model = CuratorNet(content, profile_splits=[0, 1], profile_items=[0], item_units=1, profile_units=1, l2=0.0)
    model(model.example_input())
    for tower, name, kernel in ((model.item_model, "item_dense_1", [[0.5]]), (model.item_model, "item_dense_2", [[1]]),
                                (model.profile_model, "profile_dense_1", [[1], [1]]),
                                (model.profile_model, "profile_dense_2", [[1]]),
                                (model.profile_model, "profile_dense_3", [[1]])):
        layer = tower.get_layer(name)
        layer.kernel.assign(np.asarray(kernel, np.float32))
        layer.bias.assign(np.zeros(1, np.float32))
    phi = 0.5 * SELU ** 2 * content[:, 0]  # Φ(f_0) = λ², Φ(f_1) = 2λ²
    user = 2 * SELU ** 3 * phi[0]
    np.testing.assert_allclose(model.score(np.array([0]), np.array([[0, 1]])), [[user * phi[0], user * phi[1]]],
                               rtol=1e-6)
    assert model.score(np.array([0]), np.array([[1]]))[0, 0] == pytest.approx(4 * SELU ** 7, rel=1e-6)
