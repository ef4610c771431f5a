"""HASC (Wu et al.): equations against hand-worked values, masking, training on the synthetic
world, BPR initialisation, save/restore, explanations and two-stage retrieval."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfvrec.runs import Run
from tfvrec import config as config_lib
from tfvrec.models.hasc import explain as explain_lib
from tfvrec.cli import main as cli_main
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.data.synthetic import SyntheticWorldConfig, load_truth, write_world
from tfvrec.models.hasc import inputs as hasc_inputs
from tfvrec.models.hasc import model as hasc
from tfvrec.models.hasc import retrieval as hasc_retrieval
from tfvrec.training import trainer


# ----------------------------------------------------------------------------- a hand-made world
# u0 uploaded i0, i1, i4 and follows u1, u2; u1 uploaded i2 and follows u0; u2 uploaded i3;
# u3 uploaded nothing and follows nobody; i5 has no creator.
def _tiny(path):
    users = pd.DataFrame({"user": ["u0", "u1", "u2", "u3"]})
    items = pd.DataFrame({"item": [f"i{k}" for k in range(6)], "creator": ["u0", "u0", "u1", "u2", "u0", ""]})
    likes = [("u0", "i2"), ("u0", "i3"), ("u1", "i3"), ("u1", "i5"), ("u2", "i0"), ("u2", "i2"), ("u3", "i1"),
             ("u3", "i3")]
    social = pd.DataFrame({"user": ["u0", "u0", "u1"], "followed": ["u1", "u2", "u0"]})
    return write_dataset(os.path.join(path, "tiny"), users=users, items=items,
                         interactions={"train": pd.DataFrame(likes, columns=["user", "item"])}, social=social,
                         overwrite=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_dataset(_tiny(str(tmp_path_factory.mktemp("tiny"))))


def _config(data_path, *sets, model_dir="/nonexistent"):
    return config_lib.load_config(None, ["data.source=directory", f"data.path={data_path}",
                                         f"runtime.model_dir={model_dir}", "model.hasc.init_from_bpr=false",
                                         *sets], experiment="hasc")


def _model(dataset, *sets):
    model = hasc.create(_config(dataset.path, *sets), dataset)
    model(model.example_input())
    return model


def _index(dataset, *ids):
    return [int(np.flatnonzero(dataset.user_ids == i)[0]) if i.startswith("u")
            else int(np.flatnonzero(dataset.item_ids == i)[0]) for i in ids]


def test_capped_lists_and_segment_softmax():
    members, splits = hasc_inputs.capped_lists([2, 0, 2, 2, 0], [7, 5, 1, 3, 4], num_owners=4, cap=2, seed=0)
    np.testing.assert_array_equal(splits, [0, 2, 2, 4, 4])  # owner 2's three members capped to two
    np.testing.assert_array_equal(members[:2], [4, 5])
    assert set(members[2:]) < {1, 3, 7} and len(set(members[2:])) == 2
    weights = hasc.segment_softmax(tf.constant([0.0, np.log(3.0), 5.0]), tf.constant([0, 0, 2], tf.int64), 3)
    np.testing.assert_allclose(weights.numpy(), [0.25, 0.75, 1.0], rtol=1e-6)


def test_avg_score_is_the_hand_worked_svdpp_like_score(tiny):
    """AVG (Wu et al. §4.4): α = 1/|L_a|, β = 1/|S_a|, γ = 1/3, worked out by hand."""
    model = _model(tiny, "model.hasc.attention=avg", "model.hasc.embedding_dim=2")
    u0, u1, u2, u3 = _index(tiny, "u0", "u1", "u2", "u3")
    i0, i1, i3, i4, i5 = _index(tiny, "i0", "i1", "i3", "i4", "i5")
    P, Q = np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)
    W, X, b = np.zeros((6, 2), np.float32), np.zeros((6, 2), np.float32), np.zeros((6, 1), np.float32)
    P[u0], P[u3] = [1, 0], [0, 3]
    Q[u1], Q[u2] = [0, 1], [2, 0]
    X[i0], X[i1], X[i4] = [1, 1], [3, 1], [2, -2]
    W[i3], W[i5], b[i3], b[i5] = [1, 2], [4, 1], 0.5, -1
    for layer, value in ((model.base_user, P), (model.auxiliary_user, Q), (model.base_item, W),
                         (model.auxiliary_item, X), (model.item_bias, b)):
        layer.embeddings.assign(value)
    scores = model.score(np.array([u0, u3, u3]), np.array([[i3, i5], [i3, i5], [i5, i3]]))
    # u0, i3: X̃ = mean(X_i0, X_i1, X_i4) = [2, 0]; Q̃ = mean(Q_u1, Q_u2) = [1, .5]; Q_C(i3) = Q_u2 = [2, 0];
    #   W_i3 · (P_u0 + (X̃ + Q̃ + Q_C) / 3) + b = [1, 2] · [8/3, 1/6] + .5 = 3.5
    # u0, i5 (no creator: γ = 1/2, 1/2): [4, 1] · ([1, 0] + ([2, 0] + [1, .5]) / 2) - 1 = [4, 1] · [2.5, .25] - 1 = 9.25
    # u3 (no uploads, no follows), i3: γ = (0, 0, 1): [1, 2] · ([0, 3] + [2, 0]) + .5 = 8.5
    # u3, i5: nothing but BPR: [4, 1] · [0, 3] - 1 = 2
    np.testing.assert_allclose(scores, [[3.5, 9.25], [8.5, 2.0], [2.0, 8.5]], rtol=1e-6)
    np.testing.assert_allclose(model.score_all(np.array([u0, u3]))[:, [i3, i5]], [[3.5, 9.25], [8.5, 2.0]],
                               rtol=1e-6)


def _reference_scores(model, dataset, users, items):
    """Eq. 3 and the three attention nets in plain numpy, from the dataset's own tables."""
    P, Q = model.base_user.embeddings.numpy(), model.auxiliary_user.embeddings.numpy()
    W, X = model.base_item.embeddings.numpy(), model.auxiliary_item.embeddings.numpy()
    b = model.item_bias.embeddings.numpy()[:, 0]

    def net(layer, query, elements):
        w1q, b1 = layer.query_projection.kernel.numpy(), layer.query_projection.bias.numpy()
        w1e, w2 = layer.element_projection.kernel.numpy(), layer.output_weights.kernel.numpy()[:, 0]
        h = query @ w1q + b1 + elements @ w1e
        return np.where(h > 0, h, np.expm1(h)) @ w2  # ELU

    def softmax(e):
        e = np.exp(e - e.max())
        return e / e.sum()
    out = np.zeros((len(users), len(items[0])))
    for row, (a, candidates) in enumerate(zip(users, items)):
        user = np.concatenate([P[a], Q[a]])
        uploads = np.flatnonzero(dataset.item_creator == a)
        followees = dataset.social["followed"].values[dataset.social["user"].values == a]
        aspects, present = [np.zeros(2), np.zeros(2)], [len(uploads) > 0, len(followees) > 0]
        if len(uploads):
            alpha = softmax(net(model.upload_attention, user, np.concatenate([W[uploads], X[uploads]], 1)))
            aspects[0] = alpha @ X[uploads]
        if len(followees):
            beta = softmax(net(model.social_attention, user, np.concatenate([P[followees], Q[followees]], 1)))
            aspects[1] = beta @ Q[followees]
        for col, i in enumerate(candidates):
            creator = dataset.item_creator[i]
            vectors = aspects + [Q[creator] if creator >= 0 else np.zeros(2)]
            mask = np.array(present + [creator >= 0])
            logits = net(model.aspect_attention, user, np.stack(vectors))
            gamma = np.zeros(3)
            gamma[mask] = softmax(logits[mask]) if mask.any() else []
            out[row, col] = W[i] @ (P[a] + sum(g * v for g, v in zip(gamma, vectors))) + b[i]
    return out


def test_attention_scores_match_a_numpy_reference(tiny):
    tf.keras.utils.set_random_seed(3)
    model = _model(tiny, "model.hasc.embedding_dim=2", "model.hasc.attention_dim=3", "model.hasc.init_stddev=0.7")
    model.item_bias.embeddings.assign(np.random.default_rng(0).normal(size=(6, 1)))
    users = np.arange(4)
    items = np.tile(np.arange(6), (4, 1))
    expected = _reference_scores(model, tiny, users, items)
    np.testing.assert_allclose(model.score(users, items), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score_all(users), expected, rtol=1e-5, atol=1e-6)


def test_users_without_uploads_or_follows_never_produce_nan(tiny):
    """Empty L_a / S_a and creator-less images are masked out of γ; loss and gradients stay finite."""
    model = _model(tiny, "model.hasc.embedding_dim=4")
    model.compile(optimizer="adam")
    u3, i5 = _index(tiny, "u3", "i5")
    out = explain_lib.attention_arrays(model, [u3, u3, 0], [i5, 3, i5])
    np.testing.assert_array_equal(out["gamma"][0], [0, 0, 0])  # nothing but P_aᵀW_i + b_i
    np.testing.assert_allclose(out["gamma"][1], [0, 0, 1])
    assert out["gamma"][2, 2] == 0 and out["gamma"][2, :2].sum() == pytest.approx(1)
    batch = {"user": tf.constant([u3, u3, 0, 1], tf.int64), "positive": tf.constant([i5, 3, i5, 5], tf.int64),
             "negatives": tf.constant([[0, 1], [i5, 2], [4, 4], [i5, 0]], tf.int64)}
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch, training=True)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert np.isfinite(loss.numpy())
    for variable, gradient in zip(model.trainable_variables, gradients):
        if gradient is not None:
            assert np.isfinite(tf.convert_to_tensor(gradient).numpy()).all(), variable.name
    losses = [float(model.train_step(batch)["loss"]) for _ in range(5)]  # eager Adam steps
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_aspect_ablations_from_config(tiny):
    u0 = _index(tiny, "u0")[0]
    for aspects, expected in ((["upload"], [1, 0, 0]), (["social"], [0, 1, 0]), (["creator"], [0, 0, 1])):
        model = _model(tiny, f"model.hasc.aspects={aspects}")
        np.testing.assert_allclose(explain_lib.attention_arrays(model, [u0], [3])["gamma"][0], expected)
    gamma = explain_lib.attention_arrays(_model(tiny, "model.hasc.attention=avg"), [u0], [3])["gamma"][0]
    np.testing.assert_allclose(gamma, [1 / 3] * 3, rtol=1e-6)
    base_only = _model(tiny, "model.hasc.attention_inputs=[base]")
    assert base_only.upload_attention.element_projection.kernel.shape[0] == base_only.embedding_dim
    with pytest.raises(config_lib.ConfigError, match="model.hasc.aspects"):
        _model(tiny, "model.hasc.aspects=[upload, friends]")
    with pytest.raises(config_lib.ConfigError, match="model.hasc.attention"):
        _model(tiny, "model.hasc.attention=max")


def test_visual_features_enter_the_attention_through_a_learned_projection(tiny, tmp_path):
    from tfvrec.data import features as features_lib
    import shutil
    path = str(tmp_path / "tiny_visual")
    shutil.copytree(tiny.path, path)
    vectors = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    features_lib.save_features(os.path.join(path, "features", "pixels.npz"), tiny.item_ids, vectors)
    dataset = load_dataset(path)
    model = hasc.create(_config(path, "data.features=pixels", "model.hasc.embedding_dim=3"), dataset)
    model(model.example_input())
    assert model.visual_projection.kernel.shape == (5, 3)  # E: features → D
    # F_a (eq. 6) is the mean feature of the user's liked images.
    u0 = _index(dataset, "u0")[0]
    liked = dataset.split("train")["item"].values[dataset.split("train")["user"].values == u0]
    np.testing.assert_allclose(model.user_features.numpy()[u0], vectors[liked].mean(0), rtol=1e-6)
    # Visual input changes the attention, so the scores.
    before = model.score_all(np.arange(4))
    model.visual_projection.kernel.assign(model.visual_projection.kernel * 5)
    assert not np.allclose(before, model.score_all(np.arange(4)))


# ----------------------------------------------------------------------------- the synthetic world
# Users with a planted driver: "social" users like what their followees liked, "upload"
# users (creators) like images resembling their own uploads. Low homophily keeps the two
# signals apart (followees' tastes are not the user's own), so which aspect explains a
# user's likes is a property of the user that γ can learn.
WORLD = dict(num_users=800, num_items=1500, num_creators=300, mean_likes_per_user=25.0, driver_purity=0.95,
             homophily=0.2, seed=0)
TRAIN = ["trainer.epochs=12", "trainer.batch_size=256", "trainer.learning_rate=0.005", "model.hasc.l2=0.01",
         "model.hasc.auxiliary_init=bpr", "model.bpr.l2=0.001", "trainer.early_stopping_patience=3",
         "trainer.validation_metric=hr@10", "eval.split=test", "eval.protocols=[sampled:100]", "eval.ks=[5, 10]",
         "eval.repeats=3", "eval.baselines=[]", "trainer.verbose=0", "runtime.distribution_strategy=default"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(str(tmp_path_factory.mktemp("world") / "world"), SyntheticWorldConfig(**WORLD))


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    """HASC trained by the engine; its BPR-MF initialisation trained first into <run>/bpr_init."""
    model_dir = str(tmp_path_factory.mktemp("hasc_run"))
    config = config_lib.load_config(None, ["data.source=directory", f"data.path={world}",
                                           f"runtime.model_dir={model_dir}", *TRAIN], experiment="hasc")
    rows, model = trainer.train(config, return_model=True)
    IN_MEMORY["hasc"] = model  # the trained in-memory model, for the save → restore check
    return model_dir, rows


IN_MEMORY = {}


def _hr(model_dir, metric="hr@10"):
    return json.load(open(os.path.join(model_dir, "metrics.json")))["results"][0]["metrics"][metric]


@pytest.fixture(scope="module")
def trained_again(world, tmp_path_factory):
    """The same run with another runtime.seed (initialisation and input stream). The two effects below
    are about one standard error of a single run on this world: measured over runtime.seed 0-2 with
    this input stream and the previous one, the gain over BPR-MF was positive in all 12 (run, metric)
    pairs but above +0.01 in 8, and the social-attention gap 1.6-4.3 standard errors. So they are
    asserted over both runs; with seeds 0 and 1 the attention gap clears 2 standard errors by little
    (2.03), and a 1,600-user world did not show either effect at seed 0: weak, not robust, signals."""
    model_dir = str(tmp_path_factory.mktemp("hasc_run_seed1"))
    config = config_lib.load_config(None, ["data.source=directory", f"data.path={world}",
                                           f"runtime.model_dir={model_dir}", "runtime.seed=1", *TRAIN],
                                    experiment="hasc")
    trainer.train(config)
    return model_dir


def test_hasc_beats_its_bpr_initialisation_on_the_synthetic_world(trained, trained_again):
    gains = []
    for model_dir in (trained[0], trained_again):
        bpr_dir = os.path.join(model_dir, "bpr_init")
        assert config_lib.read_params(bpr_dir).model.name == "bpr"
        gains += [_hr(model_dir, metric) - _hr(bpr_dir, metric) for metric in ("hr@5", "hr@10")]
    # Per run and metric the gain is ≈ +0.012 with a spread of ≈ 0.008 (6 runs measured); its mean over
    # 2 runs × 2 metrics has a standard error of ≈ 0.004, so a HASC that learned nothing over its
    # initialisation would fall below +0.005.
    assert all(g > -0.01 for g in gains), gains
    assert np.mean(gains) > 0.005, gains


def test_social_drivers_get_more_social_attention_than_upload_drivers(trained, trained_again, world):
    truth = load_truth(world)
    shares, masks = [], []
    for model_dir in (trained[0], trained_again):
        _, dataset, model = Run(model_dir).load()
        test = dataset.split("test")
        out = explain_lib.attention_arrays(model, test["user"].values, test["item"].values)
        # Only users with both aspects, so masking (a user without uploads) plays no part.
        masks.append((out["uploads"][:, 0] >= 0) & (out["followees"][:, 0] >= 0))
        shares.append(out["gamma"][:, 1] / (out["gamma"][:, 0] + out["gamma"][:, 1]))
    np.testing.assert_array_equal(masks[0], masks[1])
    # Each test example's share averaged over the two runs (the same examples: not twice the sample).
    share, driver = np.mean(shares, axis=0), truth["user_driver"][test["user"].values]
    social, upload = share[masks[0] & (driver == "social")], share[masks[0] & (driver == "upload")]
    assert len(social) > 30 and len(upload) > 30
    difference = social.mean() - upload.mean()
    standard_error = np.sqrt(social.var() / len(social) + upload.var() / len(upload))
    assert difference > 2 * standard_error, (social.mean(), upload.mean(), standard_error)


def test_p_and_w_start_from_the_bpr_run(trained, world):
    model_dir, _ = trained
    _, dataset, bpr = Run(os.path.join(model_dir, "bpr_init")).load()
    config = config_lib.read_params(model_dir)
    fresh = hasc.create(config, dataset)
    fresh(fresh.example_input())
    trainer.run_warm_starts(config, dataset, fresh)  # what the engine does before training
    user = bpr.user_model.get_layer("user_embedding").embeddings.numpy()
    item = bpr.item_model.get_layer("item_embedding").embeddings.numpy()
    np.testing.assert_array_equal(fresh.base_user.embeddings.numpy(), user)
    np.testing.assert_array_equal(fresh.base_item.embeddings.numpy(), item)
    np.testing.assert_array_equal(fresh.item_bias.embeddings.numpy(),
                                  bpr.item_model.get_layer("item_bias").embeddings.numpy())
    np.testing.assert_array_equal(fresh.auxiliary_user.embeddings.numpy(), user)  # auxiliary_init: bpr
    np.testing.assert_array_equal(fresh.auxiliary_item.embeddings.numpy(), item)
    config.model.hasc.bpr_run = os.path.join(model_dir, "bpr_init")
    # Single-aspect ablations warm-start too: without the upload aspect X is never built.
    for aspects in (["creator"], ["social"], ["upload"]):
        config.model.hasc.aspects = aspects
        single = hasc.create(config, dataset)
        single(single.example_input())
        trainer.run_warm_starts(config, dataset, single)
        np.testing.assert_array_equal(single.base_user.embeddings.numpy(), user)
        np.testing.assert_array_equal(single.auxiliary_user.embeddings.numpy(), user)
        assert single.auxiliary_item.built == (aspects == ["upload"])
        if single.auxiliary_item.built:
            np.testing.assert_array_equal(single.auxiliary_item.embeddings.numpy(), item)
    # A BPR run of another size cannot initialise this HASC.
    config.model.hasc.embedding_dim += 1
    other = hasc.create(config, dataset)
    with pytest.raises(config_lib.ConfigError, match="embedding_dim"):
        trainer.run_warm_starts(config, dataset, other)


def test_restored_run_scores_and_explains_like_the_trained_model(trained):
    """tfrs' save/restore check: the run restored from disk against the model trained in memory."""
    model_dir, _ = trained
    _, dataset, model = Run(model_dir).load()
    again = IN_MEMORY["hasc"]
    users = np.arange(0, dataset.num_users, 37)
    np.testing.assert_array_equal(model.score_all(users), again.score_all(users))
    items = np.tile(np.arange(50), (len(users), 1))
    np.testing.assert_allclose(model.score(users, items), model.score_all(users)[:, :50], rtol=1e-5, atol=1e-5)
    a = explain_lib.attention_arrays(model, users, users % 50)
    b = explain_lib.attention_arrays(again, users, users % 50)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_explain_api_and_cli(trained, capsys):
    model_dir, _ = trained
    _, dataset, model = Run(model_dir).load()
    creators = set(dataset.item_creator[dataset.item_creator >= 0])
    followers = set(dataset.social["user"])
    user = next(u for u in range(dataset.num_users) if u in creators and u in followers)
    item = int(np.flatnonzero(dataset.item_creator >= 0)[0])
    explanation = explain_lib.explain(model, dataset, dataset.user_ids[user], dataset.item_ids[item], top=0)
    # Normalisation: γ over the three aspects, α over all uploads, β over all followees each sum to 1.
    assert set(explanation.aspects) == {"upload", "social", "creator"}
    assert sum(explanation.aspects.values()) == pytest.approx(1, abs=1e-5)
    assert len(explanation.uploads) == explanation.num_uploads == int(np.sum(dataset.item_creator == user))
    assert sum(w for _, w in explanation.uploads) == pytest.approx(1, abs=1e-5)
    assert sum(w for _, w in explanation.followees) == pytest.approx(1, abs=1e-5)
    # Ids exist and are the right ones: the user's own uploads and followees, the item's creator.
    uploads = set(dataset.item_ids[dataset.item_creator == user])
    followees = set(dataset.user_ids[dataset.social["followed"].values[dataset.social["user"].values == user]])
    assert {i for i, _ in explanation.uploads} == uploads
    assert {u for u, _ in explanation.followees} <= followees and len(explanation.followees) > 0
    assert explanation.creator == dataset.user_ids[dataset.item_creator[item]]
    assert explanation.score == pytest.approx(float(model.score([user], [[item]])[0, 0]), rel=1e-5)

    # The CLI prints the same thing, top 3 by weight, as JSON or text.
    assert cli_main(["explain", "--run", model_dir, "--user", dataset.user_ids[user],
                     "--item", dataset.item_ids[item], "--top", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["aspects"] == pytest.approx(explanation.aspects, abs=1e-6)
    assert [f["user"] for f in printed["followees"]] == [u for u, _ in explanation.followees[:3]]
    weights = [f["weight"] for f in printed["followees"]]
    assert weights == sorted(weights, reverse=True)
    assert cli_main(["explain", "--run", model_dir, "--user", dataset.user_ids[user],
                     "--item", dataset.item_ids[item]]) == 0
    text = capsys.readouterr().out
    assert "social influence" in text and explanation.followees[0][0] in text
    # Unknown ids: one line naming the id and the file, exit 2.
    assert cli_main(["explain", "--run", model_dir, "--user", "nobody", "--item", dataset.item_ids[item]]) == 2
    assert "users.tsv" in capsys.readouterr().err


def test_two_stage_retrieval(trained):
    model_dir, _ = trained
    config, dataset, model = Run(model_dir).load()
    users = np.arange(0, dataset.num_users, 5)
    exclude = dataset.train_items_by_user()
    # Retrieving the whole catalogue re-ranks everything: exactly the full-scoring top-k.
    assert hasc_retrieval.two_stage_recall(config, dataset, model, users, k=10, num_retrieve=dataset.num_items,
                                           exclude=exclude) == 1.0
    recalls = [hasc_retrieval.two_stage_recall(config, dataset, model, users, k=10, num_retrieve=n, exclude=exclude)
               for n in (10, 100)]
    assert 0 < recalls[0] < 1 and recalls[0] <= recalls[1]
    items, scores = hasc_retrieval.recommend(config, dataset, model, users[:4], k=10, num_retrieve=100,
                                            exclude=[exclude[u] for u in users[:4]])
    assert not any(np.isin(row, exclude[u]).any() for row, u in zip(items, users[:4]))
    assert (np.diff(scores, axis=1) <= 0).all()
    # Without the creator aspect the score is the query·candidate dot product exactly.
    config = config_lib.read_params(model_dir)
    config.model.hasc.aspects = ["upload", "social"]
    config.model.hasc.init_from_bpr, config.model.hasc.auxiliary_init = False, "random"
    no_creator = hasc.create(config, dataset)
    no_creator(no_creator.example_input())
    np.testing.assert_allclose(no_creator.query_vectors(users).numpy() @ no_creator.candidate_vectors().numpy().T,
                               no_creator.score_all(users), rtol=1e-4, atol=1e-5)
