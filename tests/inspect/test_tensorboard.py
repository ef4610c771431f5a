"""TensorBoard beyond scalars: the event files of a short run hold the scalars (regularisation
loss apart from the ranking loss, learning rate), the HParams row with the test metrics, the
per-epoch histograms and recommendation grid, and the Embedding Projector's files agree."""
import io
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.projector import projector_config_pb2
from google.protobuf import text_format

from tfvrec.inputs import bootstrap_pairs
from tfvrec.data.dataset import load_dataset
from tfvrec.models.bpr.model import BPRMF
from tfvrec import config as config_lib


def _events(directory):
    acc = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def _values(acc, tag):
    return [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


def test_scalars_separate_regularisation_and_log_the_learning_rate(hasc_run):
    run_dir, _ = hasc_run
    train = _events(os.path.join(run_dir, "tensorboard", "train"))
    regularisation = _values(train, "epoch_regularization_loss")
    loss, total = _values(train, "epoch_loss"), _values(train, "epoch_total_loss")
    assert len(regularisation) == 2 and min(regularisation) > 0  # HASC's λ‖Θ‖², no longer folded into the loss
    np.testing.assert_allclose(np.add(loss, regularisation), total, rtol=1e-5)
    assert _values(train, "epoch_lr")[0] > 0


def test_hparams_row_holds_the_config_and_the_test_metrics(hasc_run):
    run_dir, _ = hasc_run
    acc = _events(os.path.join(run_dir, "tensorboard", "hparams"))
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}
    assert hparams["model.name"] == "hasc" and hparams["model.hasc.embedding_dim"] > 0
    assert "trainer.learning_rate" in hparams and "data.synthetic.num_users" in hparams
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    hr5 = metrics["results"][0]["metrics"]["hr@5"]
    assert abs(_values(acc, "test/hr@5")[0] - hr5) < 1e-6
    assert abs(_values(acc, "test/popularity/sampled_100/hr@5")[0] - metrics["results"][1]["metrics"]["hr@5"]) < 1e-6


def test_epoch_histograms_and_recommendation_grid(hasc_run):
    run_dir, _ = hasc_run
    acc = _events(os.path.join(run_dir, "tensorboard", "epochs"))
    tags = acc.Tags()["tensors"]
    assert any(t.startswith("embedding_norms/") for t in tags)
    assert {"gamma/upload", "gamma/social", "gamma/creator", "attention_entropy/alpha_uploads"} <= set(tags)
    events = acc.Tensors("recommendations/history_then_top_k")
    assert [e.step for e in events] == [0, 1]  # one grid per epoch
    width, height, png = tf.make_ndarray(events[-1].tensor_proto)
    picture = np.asarray(Image.open(io.BytesIO(png)))
    assert picture.shape == (int(height), int(width), 3)
    assert int(height) == 4 * (48 + 4) + 4  # four fixed validation users, one row each
    assert int(width) == (6 + 1 + 8) * (48 + 4) + 4  # six history tiles, a gap, the top 8


def test_projector_config_sprite_and_metadata_agree(hasc_run):
    run_dir, _ = hasc_run
    logdir = os.path.join(run_dir, "tensorboard", "projector")
    config = text_format.Parse(open(os.path.join(logdir, "projector_config.pbtxt")).read(),
                               projector_config_pb2.ProjectorConfig())
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(logdir))
    items = config.embeddings[0]
    vectors = reader.get_tensor(items.tensor_name)
    rows = open(os.path.join(logdir, items.metadata_path)).read().splitlines()
    assert rows[0].split("\t") == ["item", "creator", "artist", "popularity", "tags"]
    assert len(rows) - 1 == vectors.shape[0] == 300  # every item of the tiny world, one row per vector
    tile = list(items.sprite.single_image_dim)
    sprite = Image.open(os.path.join(logdir, items.sprite.image_path))
    side = int(np.ceil(np.sqrt(vectors.shape[0])))
    assert sprite.size == (side * tile[0], side * tile[1])
    users = config.embeddings[1]
    assert reader.get_tensor(users.tensor_name).shape[0] == len(open(os.path.join(logdir, users.metadata_path))
                                                                .read().splitlines()) - 1


def test_bpr_reports_its_l2_term_as_regularisation_loss(tmp_path):
    from planted import planted_dataset
    dataset = load_dataset(planted_dataset(str(tmp_path)))
    config = config_lib.load_config(None, ["trainer.batch_size=32"])
    model = BPRMF(dataset.num_users, dataset.num_items, embedding_dim=4, l2=0.1)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0))
    batch = next(iter(bootstrap_pairs(dataset, config.trainer, seed=0)[0]))
    logs = model.train_step(batch)
    assert float(logs["regularization_loss"]) > 0
    np.testing.assert_allclose(float(logs["loss"]) + float(logs["regularization_loss"]), float(logs["total_loss"]),
                               rtol=1e-6)
    model.l2 = 0.0
    assert float(model.train_step(batch)["regularization_loss"]) == 0.0
