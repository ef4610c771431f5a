"""CNN-PerMLP trained on a small synthetic world: it beats every baseline of the paper on
posts of new images; save → restore; ``tfvrec tags``; the export answers TF Serving's gRPC
stub with the in-process tags; bad input gives clear errors."""
import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfvrec.runs import Run
from tfvrec import config as config_lib
from tfvrec.data.errors import DataError
from tfvrec.models.cnn_permlp import tagger as tagger_lib
from tfvrec.serving.server import launch
from tfvrec.training import trainer

from conftest import REPO

# The shipped synthetic recipe on a smaller world (a user's history alone cannot tell an
# image's topic; topics share colour palettes in pairs, so a colour histogram cannot either).
WORLD = ["data.synthetic.num_users=100", "data.synthetic.num_items=600", "data.synthetic.num_creators=40",
         "trainer.epochs=20", "trainer.verbose=0", "runtime.distribution_strategy=default"]
VARIANTS = {  # the trained rows of the paper's table, as model.cnn_permlp overrides
    "cnn_permlp": [],
    "cnn": ["model.cnn_permlp.personalized=false"],
    "ch_permlp": ["model.cnn_permlp.features=histogram"],
    "pitf": ["model.cnn_permlp.architecture=pitf", "model.cnn_permlp.features=embedding",
             "model.cnn_permlp.embedding_dim=64", "model.cnn_permlp.l2=1e-4", "trainer.learning_rate=0.01"],
}
NEW = "test posts, new images"


def config_for(tmp, name):
    return config_lib.load_config(os.path.join(REPO, "configs", "cnn_permlp_synthetic.yaml"),
                                  sets=WORLD + VARIANTS[name] + [f"runtime.model_dir={tmp / name}",
                                                                 f"data.cache_dir={tmp / 'data'}"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnn_permlp")
    out = {"tmp": tmp, "rows": {}}
    for name in VARIANTS:
        config = config_for(tmp, name)
        if name == "cnn_permlp":
            rows, model = trainer.train(config, return_model=True)
            out["model"], out["config"] = model, config
        else:
            rows = trainer.train(config)
        out["rows"][name] = {(scorer, r.protocol): r for scorer, r in rows}
    return out


def f1_at_5(trained, variant, scorer=None, view=NEW):
    return trained["rows"][variant][(scorer or "cnn_permlp", view)].metrics["f1@5"]


def test_beats_cnn_mp_u_ch_permlp_and_pitf_on_new_images(trained):
    ours = f1_at_5(trained, "cnn_permlp")
    others = {"CNN": f1_at_5(trained, "cnn"), "CH-PerMLP": f1_at_5(trained, "ch_permlp"),
              "PITF": f1_at_5(trained, "pitf"), "MP-u": f1_at_5(trained, "cnn_permlp", "MP-u"),
              "MP": f1_at_5(trained, "cnn_permlp", "MP")}
    assert trained["rows"]["cnn_permlp"][("cnn_permlp", NEW)].num_users >= 50  # test posts of unseen images
    for name, value in others.items():
        assert ours > value, (name, ours, others)
    metrics = json.load(open(trained["tmp"] / "cnn_permlp" / "metrics.json"))
    assert {r["protocol"] for r in metrics["results"]} == {"test posts", NEW}
    assert {"f1@1", "precision@10", "recall@3"} <= set(metrics["results"][0]["metrics"])


def test_loss_decreases(trained):
    history = json.load(open(trained["tmp"] / "cnn_permlp" / "training_state.json"))["history"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_save_restore_gives_the_trained_models_tag_scores(trained):
    model = trained["model"]
    rows = model.posts.rows("test")[:50]
    _, _, restored = Run(str(trained["tmp"] / "cnn_permlp")).load()
    np.testing.assert_allclose(restored.score_posts(model.posts.user[rows], model.posts.item[rows]),
                               model.score_posts(model.posts.user[rows], model.posts.item[rows]), rtol=1e-5,
                               atol=1e-5)


def example_image(trained, tmp):
    """A test post's image as a PNG file, and the post's user."""
    model = trained["model"]
    row = model.posts.rows("test")[model.posts.new_image(model.posts.rows("test"))][0]
    from tfvrec.data.resolve import resolve_dataset
    dataset = resolve_dataset(trained["config"].data)
    pixels = dataset.images()[model.posts.item[row]]
    path = tmp / "post.png"
    path.write_bytes(tf.io.encode_png(pixels).numpy())
    return path, str(dataset.user_ids[model.posts.user[row]])


@pytest.fixture(scope="module")
def tagger(trained):
    return tagger_lib.Tagger(str(trained["tmp"] / "cnn_permlp"))


def test_tags_for_a_known_user_and_the_labelled_fallback_for_a_new_one(trained, tagger, tmp_path, capsys):
    path, user = example_image(trained, tmp_path)
    known = tagger.tags(user, image=str(path), k=5)
    assert known["personalized"] and len(known["tags"]) == 5 and known["scores"] == sorted(known["scores"])[::-1]
    fallback = tagger.tags("somebody-new", image=path.read_bytes(), k=5)
    assert not fallback["personalized"] and "NON-PERSONALIZED" in fallback["note"]
    assert fallback["tags"] != known["tags"]
    only = tagger.tags(user, image=str(path), k=5, only=known["tags"][:2][::-1])
    assert only["tags"] == known["tags"][:2]
    with pytest.raises(DataError, match="unknown tag 'no-such-tag'"):
        tagger.tags(user, image=str(path), only=["no-such-tag"])
    with pytest.raises(DataError, match="unknown tag id 9999"):
        tagger_lib.tag_names(tagger.posts.tag_ids, [0, 9999])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.jpg.*not an image"):
        tagger.tags(user, image=str(broken))

    # The command line (in process): the same answer; a broken image is exit code 2 naming the file.
    from tfvrec import cli
    run = str(trained["tmp"] / "cnn_permlp")
    assert cli.main(["tags", "--run", run, "--user", user, "--image", str(path), "-k", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tags"] == known["tags"]
    assert cli.main(["tags", "--run", run, "--user", user, "--image", str(broken)]) == 2
    error = capsys.readouterr().err
    assert "broken.jpg" in error and "Traceback" not in error
    assert cli.main(["tags", "--run", run, "--user", user, "--image", str(tmp_path / "missing.png")]) == 2
    assert "missing.png: image file not found" in capsys.readouterr().err


def test_export_answers_the_tf_serving_grpc_stub_with_the_in_process_tags(trained, tagger, tmp_path):
    from tfvrec.serving import export
    path, user = example_image(trained, tmp_path)
    info = export.export_run(str(trained["tmp"] / "cnn_permlp"), str(tmp_path / "export" / "models" / "tags"))
    assert info["signatures"] == ["serving_default"] and not info["custom_ops"]
    expected = [tagger.tags(u, image=str(path), k=5) for u in (user, "somebody-new")]
    server = launch.start(info["models_config"], rest=False, cwd=REPO)
    port = server.grpc_port
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "tags"
        request.inputs["user"].CopyFrom(tf.make_tensor_proto(np.array([user, "somebody-new"], object)))
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.array([path.read_bytes()] * 2, object)))
        request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.int32(5)))
        response = stub.Predict(request, timeout=60)
        tags = tf.make_ndarray(response.outputs["tags"]).astype(str)
        scores = tf.make_ndarray(response.outputs["scores"])
        assert list(tf.make_ndarray(response.outputs["personalized"])) == [True, False]
        for n, answer in enumerate(expected):
            assert list(tags[n]) == answer["tags"]
            np.testing.assert_allclose(scores[n], answer["scores"], rtol=1e-4, atol=1e-4)
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.array([b"garbage"], object)))
        request.inputs["user"].CopyFrom(tf.make_tensor_proto(np.array([user], object)))
        with pytest.raises(grpc.RpcError) as failed:
            stub.Predict(request, timeout=60)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        server.stop(timeout=30)
