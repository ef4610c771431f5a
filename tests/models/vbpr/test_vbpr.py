"""VBPR (He & McAuley, AAAI 2016) as a model of its own: eq. 2 worked by hand, new items by their visual part,
its export, and the baseline run a table's ``vbpr`` row trains."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tfvrec import config as config_lib
from tfvrec import registry
from tfvrec.models.vbpr import baselines as vbpr_baselines
from tfvrec.models.vbpr.model import VBPR

from conftest import REPO


def _hand_set_model(content, trained=None, num_users=4, standardize=False):
    rng = np.random.default_rng(0)
    model = VBPR(num_users, content, latent_dim=2, visual_dim=3, init_stddev=0.5, trained_items=trained,
                 standardize=standardize)
    model(model.example_input())
    for layer in ("item_bias", "beta_prime"):  # non-zero so every term is checked
        weights = model.item_model.get_layer(layer).weights[0]
        weights.assign(rng.normal(size=weights.shape))
    return model


def test_vbpr_score_is_the_papers_predictor():
    rng = np.random.default_rng(0)
    content = rng.normal(size=(5, 3)).astype(np.float32)
    model = VBPR(4, content, latent_dim=2, visual_dim=3, init_stddev=0.5)
    model(model.example_input())
    for layer in ("item_bias", "beta_prime"):  # non-zero so every term is checked
        weights = model.item_model.get_layer(layer).weights[0]
        weights.assign(rng.normal(size=weights.shape))
    factors = model.user_model.get_layer("user_factors").embeddings.numpy()
    gamma_i = model.item_model.get_layer("item_factors").embeddings.numpy()
    E = model.item_model.get_layer("E").kernel.numpy()
    beta_i = model.item_model.get_layer("item_bias").embeddings.numpy()[:, 0]
    beta_prime = model.item_model.get_layer("beta_prime").kernel.numpy()[:, 0]
    u, i = 3, 4
    expected = beta_i[i] + factors[u, :2] @ gamma_i[i] + factors[u, 2:] @ (content[i] @ E) + beta_prime @ content[i]
    np.testing.assert_allclose(model.score(np.array([u]), np.array([[i]]))[0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(model.score_all(np.array([u]))[0, i], expected, rtol=1e-5)




def test_vbpr_score_worked_by_hand():
    # x_ui = β_i + γ_uᵀγ_i + θ_uᵀ(E f_i) + β'ᵀ f_i (VBPR eq. 2; α, β_u cancel in BPR):
    # γ_u = 2, θ_u = 3, γ_i = 0.5, E = [1, 2]ᵀ, f_i = [1, 1], β_i = 0.25, β' = [0.1, 0.2]
    # → 0.25 + 2·0.5 + 3·(1 + 2) + (0.1 + 0.2) = 10.55
    model = VBPR(1, np.array([[1.0, 1.0]], np.float32), latent_dim=1, visual_dim=1)
    model(model.example_input())
    model.user_model.get_layer("user_factors").embeddings.assign([[2.0, 3.0]])
    model.item_model.get_layer("item_factors").embeddings.assign([[0.5]])
    model.item_model.get_layer("E").kernel.assign([[1.0], [2.0]])
    model.item_model.get_layer("item_bias").embeddings.assign([[0.25]])
    model.item_model.get_layer("beta_prime").kernel.assign([[0.1], [0.2]])
    assert model.score(np.array([0]), np.array([[0]]))[0, 0] == pytest.approx(10.55, abs=1e-5)
    assert model.score_all(np.array([0]))[0, 0] == pytest.approx(10.55, abs=1e-5)


def test_an_item_without_training_interactions_is_scored_by_its_visual_part_alone():
    """γ_i = β_i = 0 for an item nobody interacted with in training: x̂_ui = θ_uᵀ(E f_i) + β'ᵀ f_i; a trained
    item keeps its full score."""
    rng = np.random.default_rng(1)
    content = rng.normal(size=(5, 3)).astype(np.float32)
    trained = np.array([True, True, True, False, False])
    model = _hand_set_model(content, trained)
    factors = model.user_model.get_layer("user_factors").embeddings.numpy()
    gamma_i = model.item_model.get_layer("item_factors").embeddings.numpy()
    E = model.item_model.get_layer("E").kernel.numpy()
    beta_i = model.item_model.get_layer("item_bias").embeddings.numpy()[:, 0]
    beta_prime = model.item_model.get_layer("beta_prime").kernel.numpy()[:, 0]
    u = 2
    visual = factors[u, 2:] @ (content @ E).T + content @ beta_prime
    expected = np.where(trained, beta_i + gamma_i @ factors[u, :2] + visual, visual)
    np.testing.assert_allclose(model.score_all(np.array([u]))[0], expected, rtol=1e-5)
    np.testing.assert_allclose(model.score(np.array([u]), np.array([[4, 0]]))[0], expected[[4, 0]], rtol=1e-5)


def test_a_new_item_scores_as_a_catalogue_item_of_the_same_content(tmp_path):
    """The export's new item (`tfvrec index` features → embed_features) and an untrained catalogue item with the
    same raw content get the same vector, with standardised content too."""
    rng = np.random.default_rng(2)
    raw = rng.normal(3.0, 2.0, size=(6, 4)).astype(np.float32)
    model = _hand_set_model(raw, np.array([True] * 5 + [False]), standardize=True)
    catalogue = model.item_vectors(tf.constant([5], tf.int64)).numpy()
    new = model.embed_features(raw[5:6]).numpy()
    np.testing.assert_allclose(new, catalogue, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.embed_features(raw[:1]).numpy(), model.item_vectors(tf.constant([0])).numpy())


def test_the_baseline_run_is_keyed_by_what_vbpr_learns_from():
    """The ``vbpr`` row of a table is a VBPR run inside the host run, with the host's data, seed and validation
    rule and VBPR's own section; a change to any of them trains a new run."""
    config = config_lib.load_config(os.path.join(REPO, "configs", "demo.yaml"))
    run = vbpr_baselines.baseline_config(config)
    assert run.model.name == "vbpr" and run.model.vbpr.sampling == "guidelines"
    assert run.trainer.validation_metric == config.trainer.validation_metric
    assert run.trainer.optimizer == config_lib.get_experiment("vbpr").trainer.optimizer
    assert run.runtime.model_dir.startswith(os.path.join(config.runtime.model_dir, "baselines", "vbpr-"))
    for key, value in (("model.vbpr.l2", 0.5), ("model.curatornet.num_clusters", 7), ("runtime.seed", 3),
                       ("trainer.validation_metric", "hr@5"), ("data.synthetic.num_users", 523)):
        changed = config_lib.load_config(os.path.join(REPO, "configs", "demo.yaml"), [f"{key}={value}"])
        assert vbpr_baselines.baseline_config(changed).runtime.model_dir != run.runtime.model_dir, key
    again = vbpr_baselines.baseline_config(config_lib.load_config(os.path.join(REPO, "configs", "demo.yaml")))
    assert again.runtime.model_dir == run.runtime.model_dir


def test_vbpr_is_a_model_with_its_own_section_and_losses():
    spec = registry.model_spec("vbpr")
    assert spec.losses == ("logistic", "hinge") and spec.input_kind == "pairs"
    with pytest.raises(config_lib.ConfigError, match="model.vbpr.loss' must be one of \\['logistic', 'hinge'\\]"):
        config_lib.load_config(None, ["model.vbpr.loss=retrieval"], experiment="vbpr")
    with pytest.raises(config_lib.ConfigError, match="model.vbpr.sampling"):
        config_lib.load_config(None, ["model.vbpr.sampling=uniform"], experiment="vbpr")
