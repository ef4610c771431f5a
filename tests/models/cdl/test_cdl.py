"""CDL end to end on a small synthetic world (rendered pixels): training, the paper's order,
restore, export answered over gRPC by ``tfvrec serve``, bad images."""
import json
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfvrec import config as config_lib
from tfvrec.data.errors import DataError
from tfvrec.data.resolve import resolve_dataset
from tfvrec.evaluation import evaluator
from tfvrec.evaluation.baselines import RandomScorer
from tfvrec.models.cdl import model as cdl_model
from tfvrec.models.cdl.baselines import twonets_config
from tfvrec.models.cdl.protocol import write_paper_split
from tfvrec.models.cdl.sampling import TripletSampler
from tfvrec.serving import export
from tfvrec.runs import Run, restore_weights
from tfvrec.serving.model_config import update_models_config
from tfvrec.training import trainer

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tests", "serving"))  # test_server's start_server

# A world whose likes follow the users' visual taste (topic → palette, shape, texture).
WORLD = ["data.synthetic.num_users=160", "data.synthetic.num_items=400", "data.synthetic.num_topics=8",
         "data.synthetic.num_creators=30", "data.synthetic.num_artists=16", "data.synthetic.image_size=32",
         "data.synthetic.mean_likes_per_user=60", "data.synthetic.likes_spread=0.3",
         "data.synthetic.driver_visual=1.0", "data.synthetic.driver_social=0.0", "data.synthetic.driver_creator=0.0",
         "data.synthetic.driver_upload=0.0", "data.synthetic.popularity_weight=0.02",
         "data.synthetic.noise_weight=0.01"]
TOWER = ["model.cdl.image_size=32", "model.cdl.conv_filters=[8,16,16,16,16]", "model.cdl.conv_kernels=[5,3,3,3,3]",
         "model.cdl.conv_stride=1", "model.cdl.fc_units=[64]", "model.cdl.embedding_dim=32",
         "model.cdl.num_clusters=16", "model.cdl.dropout=0.0", "model.cdl.distance_dropout=0.0"]
TRAIN = ["trainer.optimizer=adam", "trainer.learning_rate=0.002", "trainer.epochs=4", "trainer.batch_size=64",
         "trainer.validation_split=", "trainer.verbose=0", "eval.repeats=2", "eval.ks=[5,20]",
         "runtime.distribution_strategy=default"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cdl")
    config = config_lib.load_config(None, WORLD + [f"data.cache_dir={root / 'cache'}"], experiment="cdl")
    source = resolve_dataset(config.data).path
    path, users = write_paper_split(source, str(root / "paper"), min_likes=40, max_likes=200, hidden=20)
    assert users >= 40
    return root, path


def run_config(world, name, *sets):
    root, path = world
    return config_lib.load_config(None, TOWER + TRAIN + [
        "data.source=directory", f"data.path={path}", f"data.cache_dir={root / 'cache'}",
        f"runtime.model_dir={root / name}", *sets], experiment="cdl")


@pytest.fixture(scope="module")
def trained(world):
    """CDL-CE with TwoNets and random as baselines, and CDL-hinge: ``{name: (rows, model, config)}``."""
    out = {}
    # (with a train holdout: the TensorBoard epoch summaries show validation users)
    config = run_config(world, "ce", "eval.baselines=[twonets,random]", "trainer.validation_split=train_holdout")
    rows, model = trainer.train(config, return_model=True)
    out["ce"] = (dict(rows), model, config)
    config = run_config(world, "hinge", "model.cdl.loss=hinge", "eval.baselines=[]")
    rows, model = trainer.train(config, return_model=True)
    out["hinge"] = (dict(rows), model, config)
    return out


def p20(rows, name):
    return rows[name].metrics["precision@20"]


def test_cdl_learns_from_pixels_far_above_random(trained):
    """On this purely visual world CE, hinge and TwoNets all learn far above random (0.2), but
    TwoNets matches or beats CDL (measured P@20 after 4 epochs without a holdout: CE 0.385, hinge
    0.385, TwoNets 0.463; this fixture, early-stopped on a train holdout: CE 0.350, hinge 0.385,
    TwoNets 0.420): the paper's order is asserted on the mixed world below (docs/models/cdl.md)."""
    rows = trained["ce"][0]
    ce, hinge = p20(rows, "cdl"), p20(trained["hinge"][0], "cdl")
    twonets, random = p20(rows, "twonets"), p20(rows, "random")
    print(f"P@20: CE {ce:.3f}, hinge {hinge:.3f}, TwoNets {twonets:.3f}, random {random:.3f}")
    assert abs(random - 0.2) < 0.03  # 20 hidden likes among 100 candidates
    assert ce > 0.3 and hinge > 0.3 and twonets > 0.3  # learnt from pixels, far above random


# The paper's order needs the world's default mix of drivers (social, creator and upload-driven
# users, popularity and noise: likes that a user's look explains only in part, the paper's
# "imperfect" data); on the purely visual world above TwoNets learns as well as CDL.
MIXED_WORLD = [w for w in WORLD if not w.startswith(("data.synthetic.driver_", "data.synthetic.popularity_",
                                                     "data.synthetic.noise_"))] + ["data.synthetic.num_users=300"]
ORDER_SEEDS = (0, 1, 2)
ORDER_BUDGETS = (8, 10)  # epochs: CDL's comparative loss overtakes TwoNets after the first few (docs/models/cdl.md)


@pytest.fixture(scope="module")
def paper_order(tmp_path_factory):
    """P@20 of CDL-CE, TwoNets and random on three seeds of the mixed world, after 8 and after 10 epochs of the
    same runs (every epoch's checkpoint kept): ``{budget: {name: [per seed]}}``."""
    scores = {budget: {name: [] for name in ("ce", "twonets", "random")} for budget in ORDER_BUDGETS}
    for seed in ORDER_SEEDS:
        root = tmp_path_factory.mktemp(f"order{seed}")
        config = config_lib.load_config(None, MIXED_WORLD + [f"data.synthetic.seed={seed}",
                                                             f"data.cache_dir={root / 'cache'}"], experiment="cdl")
        path, _ = write_paper_split(resolve_dataset(config.data).path, str(root / "paper"), min_likes=40,
                                    max_likes=200, hidden=20)
        config = run_config((root, path), "ce", f"trainer.epochs={max(ORDER_BUDGETS)}", "trainer.keep_checkpoints=0",
                            "eval.baselines=[twonets,random]")
        trainer.train(config)
        _, dataset, ce = Run(config.runtime.model_dir).load()
        twonets_dir = twonets_config(config).runtime.model_dir
        _, _, twonets = Run(twonets_dir).load(dataset=dataset)
        heldout = evaluator.heldout_by_user(dataset.split("test"))
        for budget in ORDER_BUDGETS:
            for model, directory in ((ce, config.runtime.model_dir), (twonets, twonets_dir)):
                restore_weights(model, os.path.join(directory, "checkpoints", f"ckpt-{budget}"))
            rows = dict(evaluator.evaluate_scorers(
                {"ce": ce, "twonets": twonets, "random": RandomScorer(0, dataset.num_items)}, dataset, heldout,
                ["candidates:100"], [20], 2, 0, judged="test"))
            for name in scores[budget]:
                scores[budget][name].append(rows[name].metrics["precision@20"])
    return {budget: {name: np.array(values) for name, values in by.items()} for budget, by in scores.items()}


def test_paper_order_cdl_over_twonets_over_random(paper_order):
    """Lei et al. §6.2 (Fig. 5): comparative learning (CDL-CE) beats the same towers trained pointwise
    (TwoNets, with its learned offset) on every world seed, at two training budgets, by a mean margin larger
    than the spread of the per-seed margins; both far above random (0.2). CE against hinge is within noise on
    this world and is an observation of docs/models/cdl.md, not a claim tested here."""
    for budget, scores in paper_order.items():
        print(budget, {name: np.round(values, 3).tolist() for name, values in scores.items()})
        margin = scores["ce"] - scores["twonets"]
        assert (margin > 0).all(), (budget, margin)
        assert margin.mean() > margin.std(ddof=1), (budget, margin)
        assert abs(scores["random"].mean() - 0.2) < 0.02
        assert scores["twonets"].mean() > scores["random"].mean() + 0.1, budget


def test_loss_decreases_and_distance_weights_stay_non_negative(trained):
    for name in ("ce", "hinge"):
        _, model, config = trained[name]
        state = json.load(open(os.path.join(config.runtime.model_dir, "training_state.json")))
        losses = [epoch["loss"] for epoch in state["history"]]
        assert losses[-1] < losses[0], losses
        assert (model.distance_weights().numpy() >= 0).all()


def test_restored_run_scores_like_the_trained_model(trained):
    _, model, config = trained["ce"]
    _, _, restored = Run(config.runtime.model_dir).load()
    users, items = np.arange(6), np.tile(np.arange(40), (6, 1))
    np.testing.assert_allclose(restored.score(users, items), model.score(users, items), rtol=1e-5, atol=1e-5)


def _predict(stub, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cdl"
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=60)
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def test_export_answers_the_official_grpc_stub_like_the_model(trained, tmp_path):
    from test_server import start_server
    _, model, config = trained["ce"]
    config_, dataset, _ = Run(config.runtime.model_dir).load()
    out = tmp_path / "models" / "cdl"
    export.export_model(config_, dataset, model, str(out), verify=False, run_dir=config.runtime.model_dir)
    update_models_config(str(tmp_path / "models.config"), "cdl", str(out))
    proc, grpc_port, _ = start_server(str(tmp_path / "models.config"))
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
        ids = np.asarray(dataset.item_ids, str)
        seen = dataset.train_items_by_user()
        users = np.arange(4)
        scores = model.score_all(users)  # −D, in process
        for row, u in enumerate(users):
            scores[row, seen[u]] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        got = _predict(stub, user=np.array([str(dataset.user_ids[u]) for u in users], object), k=np.int32(10))
        np.testing.assert_array_equal(got["item_ids"].astype(str), ids[top])
        np.testing.assert_allclose(got["scores"], np.take_along_axis(scores, top, 1), rtol=1e-4, atol=1e-4)
        # A new user given liked image ids: the tag-cluster vector of those images, as in training.
        liked = seen[0][:5]
        vector = model.tag_clusters.from_items(liked)
        phi = model.user_model(vector[None]).numpy()
        pi = model.catalogue_embeddings()
        d = ((phi - pi) ** 2) @ model.distance_weights().numpy()
        d[liked] = np.inf
        expected = ids[np.argsort(d, kind="stable")[:10]]
        got = _predict(stub, profile=np.array([[ids[i] for i in liked]], object), k=np.int32(10))
        np.testing.assert_array_equal(got["item_ids"][0].astype(str), expected)
        # embed_images: raw bytes of a catalogue image → its index vector √w ⊙ π(I).
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "cdl", "embed_images"
        png = tf.io.encode_png(tf.constant(model.item_inputs[3])).numpy()
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.array([png], object)))
        vector = tf.make_ndarray(stub.Predict(request, timeout=60).outputs["embeddings"])
        np.testing.assert_allclose(vector[0], pi[3] * np.sqrt(model.distance_weights().numpy()), atol=1e-3)
    finally:
        proc.kill()
        proc.wait()


def test_bad_image_names_the_file_or_is_skipped_and_counted(world, tmp_path):
    import pandas as pd
    from tfvrec.models.cdl import images
    root, path = world
    dataset = resolve_dataset(config_lib.load_config(None, ["data.source=directory", f"data.path={path}"],
                                                     experiment="cdl").data)
    folder = tmp_path / "img"
    folder.mkdir()
    paths = []
    for n in range(4):
        p = folder / f"{n}.png"
        p.write_bytes(tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy())
        paths.append(str(p))
    (folder / "2.png").write_bytes(b"not an image")
    os.remove(paths[3])
    dataset.item_image = np.array(paths + [""] * (dataset.num_items - 4), dtype=object)
    with pytest.raises(DataError, match="2.png"):
        images.load_pixels(dataset, 16, str(tmp_path / "cache"))
    pixels, usable, counts = images.load_pixels(dataset, 16, str(tmp_path / "cache"), skip_bad=True)
    assert counts["bad_images"] == 2 and counts["without_image"] == dataset.num_items - 4
    assert usable[:4].tolist() == [True, True, False, False] and pixels.shape == (dataset.num_items, 16, 16, 3)
    # From the command line: exit code 2 and the file named, no traceback.
    items = pd.read_csv(os.path.join(path, "items.tsv"), sep="\t", dtype=str, keep_default_na=False)
    broken = tmp_path / "broken"
    import shutil
    shutil.copytree(path, broken)
    items["image"] = [paths[2]] + [paths[0]] * (len(items) - 1)
    items.to_csv(broken / "items.tsv", sep="\t", index=False)
    result = subprocess.run([sys.executable, "-m", "tfvrec", "train", "--config", "configs/cdl_synthetic.yaml",
                             "--set", "data.source=directory", "--set", f"data.path={broken}",
                             "--set", f"data.cache_dir={tmp_path / 'cache2'}",
                             "--set", f"runtime.model_dir={tmp_path / 'run'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "2.png" in result.stderr and "Traceback" not in result.stderr


def test_train_stream_is_a_pure_function_of_the_seed(trained):
    _, model, config = trained["ce"]
    dataset = resolve_dataset(config.data)

    def first(seed, n=3):
        ds, steps = cdl_model.training_inputs(config, dataset, model, seed)
        return [b for b in ds.take(n)], steps
    (a, steps), (b, _), (c, _) = first(5), first(5), first(6)
    sampler = TripletSampler(dataset, config.model.cdl, model.usable)
    assert steps == -(-sampler.triplets_per_epoch // config.trainer.batch_size)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())
    assert not np.array_equal(a[0]["positive"].numpy(), c[0]["positive"].numpy())


def test_pretrained_backbone_variant_embeds_images_with_frozen_efficientnet(world, tmp_path):
    from tfvrec.models.cdl import images
    from tfvrec.models.cdl import model as cdl
    _, path = world
    dataset = resolve_dataset(config_lib.load_config(None, ["data.source=directory", f"data.path={path}"],
                                                     experiment="cdl").data)
    pixels = dataset.images()
    paths = []
    for n in range(6):
        p = tmp_path / f"{n}.png"
        p.write_bytes(tf.io.encode_png(tf.constant(pixels[n])).numpy())
        paths.append(str(p))
    dataset.item_image = np.array(paths + [""] * (dataset.num_items - 6), dtype=object)
    features, usable = images.backbone_features(dataset, str(tmp_path / "cache"))
    assert features.shape == (dataset.num_items, 1280) and usable.sum() == 6
    assert np.abs(features[:6]).sum() > 0 and not np.abs(features[6:]).sum()
    config = config_lib.load_config(None, ["model.cdl.num_clusters=4", "model.cdl.embedding_dim=8"],
                                    experiment="cdl_pretrained")
    model = cdl.CDL(config.model.cdl, np.full((3, 4), 0.25, np.float32), features, usable=usable)
    scores = model.score(np.array([0, 1]), np.array([[0, 1, 7], [2, 3, 4]]))
    assert np.isfinite(scores[:, :2]).all() and scores[0, 2] == -np.inf  # item 7 has no image
    assert model.image_model.input_shape == (None, 1280)


def test_evaluate_an_explicit_heldout_file_with_the_candidates_protocol(trained, tmp_path, capsys):
    from tfvrec import cli
    _, _, config = trained["ce"]
    path = os.path.join(config.data.path, "interactions", "test.tsv")
    assert cli.main(["evaluate", "--run", config.runtime.model_dir, "--test", path, "--protocol", "candidates:100",
                     "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "candidates:100" in out
    metrics = json.load(open(os.path.join(config.runtime.model_dir, "metrics-test.json")))
    assert metrics["results"][0]["protocol"] == "candidates:100"
    assert metrics["results"][0]["info"]["mean_candidates_per_user"] == 100


def test_train_skip_bad_skips_and_counts_the_unreadable_image(world, tmp_path):
    import pandas as pd
    import shutil
    _, path = world
    good = tmp_path / "good.png"
    good.write_bytes(tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy())
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    items = pd.read_csv(os.path.join(path, "items.tsv"), sep="\t", dtype=str, keep_default_na=False)
    items["image"] = [str(bad)] + [str(good)] * (len(items) - 1)
    items.to_csv(broken / "items.tsv", sep="\t", index=False)
    sets = ["data.source=directory", f"data.path={broken}", f"data.cache_dir={tmp_path / 'cache'}",
            f"runtime.model_dir={tmp_path / 'run'}", "trainer.epochs=1", "trainer.steps_per_epoch=2",
            "trainer.validation_split=", "eval.baselines=[]", "eval.repeats=1", *TOWER]
    command = [sys.executable, "-m", "tfvrec", "train", "--config", "configs/cdl_synthetic.yaml", "--skip-bad"]
    for s in sets:
        command += ["--set", s]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 bad image(s)" in result.stderr and "bad.jpg" in result.stderr


def test_scann_squared_l2_index_returns_the_ranking_by_d(trained):
    import copy
    _, model, config = trained["ce"]
    config = copy.deepcopy(config)
    export.apply_export_overrides(config, index="scann", sets=["export.scann_num_leaves=4",
                                                               "export.scann_leaves_to_search=4"])
    dataset = resolve_dataset(config.data)
    module = export.serving_module(config, dataset, model)
    users = np.arange(3)
    got = module.recommend(k=tf.constant(10), user=tf.constant([str(dataset.user_ids[u]) for u in users]))
    scores = model.score_all(users)
    seen = dataset.train_items_by_user()
    for row, u in enumerate(users):
        scores[row, seen[u]] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(got["item_ids"].numpy().astype(str), np.asarray(dataset.item_ids, str)[top])
    np.testing.assert_allclose(got["scores"].numpy(), np.take_along_axis(scores, top, 1), rtol=1e-4, atol=1e-4)


def test_new_images_enter_the_index_without_retraining(trained):
    from tfvrec.models.cdl.serving import scaled_vectors
    _, model, config = trained["ce"]
    dataset = resolve_dataset(config.data)
    _, users, _ = scaled_vectors(model)
    # An image whose index vector (as embed_images gives it) sits exactly on user 0's query.
    module = export.serving_module(config, dataset, model, new_items=(np.array(["new-image"]), users[:1]))
    got = module.recommend(k=tf.constant(3), user=tf.constant([str(dataset.user_ids[0])]))
    assert got["item_ids"].numpy()[0, 0].decode() == "new-image"
    np.testing.assert_allclose(got["scores"].numpy()[0, 0], 0.0, atol=1e-4)
    got = module.recommend(k=tf.constant(3), profile=tf.constant([["new-image"]]))  # a profile of it counts no tag
    assert "new-image" not in [i.decode() for i in got["item_ids"].numpy()[0]]


def test_tensorboard_holds_the_distance_weights_and_the_image_projector(trained):
    from tensorboard.backend.event_processing import event_accumulator
    _, model, config = trained["ce"]
    acc = event_accumulator.EventAccumulator(os.path.join(config.runtime.model_dir, "tensorboard", "epochs"),
                                             size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert "distance_weights" in tags and "recommendations/history_then_top_k" in tags
    projector = os.path.join(config.runtime.model_dir, "tensorboard", "projector")
    rows = open(os.path.join(projector, "items.tsv")).read().splitlines()
    assert len(rows) - 1 == model.num_items and os.path.exists(os.path.join(projector, "sprite.png"))
