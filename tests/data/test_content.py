"""Item content of the content models (`tfvrec.data.content.item_content`): single parts and their
concatenation, golden vectors on a hand-made data set, the config checks, and a new item scored as the
catalogue item with the same concatenated content (CuratorNet and VBPR, through `tfvrec.inference`)."""
import os

import numpy as np
import pandas as pd
import pytest

from tfvrec import config as config_lib
from tfvrec.data import content as content_lib
from tfvrec.data.dataset import load_dataset, write_dataset
from tfvrec.errors import ConfigError
from tfvrec.inference import Recommender
from tfvrec.runs import ensure_trained

from conftest import REPO

FEATURES = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [1.0, 1.0]], np.float32)


def hand_made(path):
    """Four items: tags (a|b, b, none, a), artists (x, y, x, none) and 2-d features."""
    items = pd.DataFrame({"item": ["i0", "i1", "i2", "i3"], "artist": ["x", "y", "x", ""],
                          "tags": [["a", "b"], ["b"], [], ["a"]]})
    train = pd.DataFrame({"user": ["u0", "u0", "u1", "u1"], "item": ["i0", "i1", "i2", "i3"]})
    return load_dataset(write_dataset(os.path.join(path, "hand"), users=pd.DataFrame({"user": ["u0", "u1"]}),
                                      items=items, interactions={"train": train},
                                      features={"f": (["i0", "i1", "i2", "i3"], FEATURES)}))


def test_golden_content_vectors_of_each_part_and_their_concatenation(tmp_path):
    dataset = hand_made(tmp_path)
    tags = np.array([[1, 1], [0, 1], [0, 0], [1, 0]], np.float32)  # columns a, b
    artist = np.array([[1, 0], [0, 1], [1, 0], [0, 0]], np.float32)  # columns x, y
    golden = {"features": FEATURES, "tags": tags, "artist_onehot": artist,
              "features+tags": np.hstack([FEATURES, tags]), "tags+features": np.hstack([tags, FEATURES]),
              "features+tags+artist_onehot": np.hstack([FEATURES, tags, artist])}
    for kind, expected in golden.items():
        content, description = content_lib.item_content(dataset, kind, "f")
        np.testing.assert_array_equal(content, expected, err_msg=kind)
        assert content.dtype == np.float32
    _, said = content_lib.item_content(dataset, "features+tags", "f")
    assert "visual features 'f' (2-d) + tags multi-hot" in said and "concatenated (4-d" in said
    _, said = content_lib.item_content(dataset, "tags", "")
    assert "1 items without one" in said and "no image embeddings" in said
    assert content_lib.content_columns(dataset, "features+tags+artist_onehot", "f") == [
        "features:0", "features:1", "tag:a", "tag:b", "artist:x", "artist:y"]


def test_content_parts_are_checked(tmp_path):
    dataset = hand_made(tmp_path)
    assert content_lib.content_parts("features + tags") == ("features", "tags")
    for bad in ("pixels", "features+features", "features+", "genres"):
        with pytest.raises(ConfigError, match="item_content must be one of"):
            content_lib.item_content(dataset, bad, "f")
    with pytest.raises(ConfigError, match="uses 'features' but data.features is empty"):
        content_lib.item_content(dataset, "tags+features", "")


def test_the_config_sections_accept_concatenated_content():
    base = os.path.join(REPO, "configs", "curatornet_synthetic.yaml")
    config = config_lib.load_config(base, ["model.curatornet.item_content=features+artist_onehot",
                                           "model.vbpr.item_content=tags+features"])
    assert config.model.curatornet.item_content == "features+artist_onehot"
    with pytest.raises(ConfigError, match="model.curatornet.item_content"):
        config_lib.load_config(base, ["model.curatornet.item_content=features+pixels"])
    with pytest.raises(ConfigError, match="model.vbpr.item_content"):
        config_lib.load_config(base, ["model.name=vbpr", "model.vbpr.item_content=features+features"])
    with pytest.raises(ConfigError, match="uses 'features' but data.features is empty"):
        config_lib.load_config(base, ["model.curatornet.item_content=tags+features", "data.features="])


def _small_world(tmp_path):
    """A catalogue of 60 items with tags and 6-d features; items i50..i59 have no interaction."""
    rng = np.random.default_rng(0)
    ids = [f"i{n}" for n in range(60)]
    tags = [[f"g{n % 4}"] + ([f"g{(n // 4) % 4}"] if n % 3 else []) for n in range(60)]
    rows = [(f"u{u}", f"i{i}") for u in range(30) for i in rng.choice(50, 6, replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item"])
    return write_dataset(os.path.join(tmp_path, "world"), users=pd.DataFrame({"user": [f"u{u}" for u in range(30)]}),
                         items=pd.DataFrame({"item": ids, "tags": tags}),
                         interactions={"train": frame.iloc[:150], "validation": frame.iloc[150:]},
                         features={"f": (ids, rng.normal(size=(60, 6)).astype(np.float32))})


@pytest.mark.parametrize("model", ["curatornet", "vbpr"])
def test_a_new_item_scores_as_the_catalogue_item_with_the_same_concatenated_content(tmp_path, model):
    path = _small_world(tmp_path)
    config = config_lib.load_config(os.path.join(REPO, "configs", "curatornet_synthetic.yaml"), [
        f"model.name={model}", "data.source=directory", f"data.path={path}", "data.features=f",
        f"runtime.model_dir={tmp_path / 'run'}", "runtime.distribution_strategy=default",
        "model.curatornet.item_content=features+tags", "model.vbpr.item_content=features+tags",
        "model.curatornet.feature_normalization=standardize", "model.vbpr.feature_normalization=standardize",
        "model.curatornet.num_clusters=3", "model.curatornet.cluster_restarts=1", "model.curatornet.item_units=8",
        "model.curatornet.profile_units=8", "model.curatornet.num_triplets=2000", "model.vbpr.sampling=bootstrap",
        "trainer.epochs=1", "trainer.steps_per_epoch=5", "trainer.batch_size=32", "trainer.verbose=0",
        "trainer.validation_split=", "eval.baselines=[]"])
    rec = Recommender(ensure_trained(config).dir)
    dataset = rec.dataset
    content, description = content_lib.item_content(dataset, "features+tags", "f")
    assert content.shape == (60, 6 + 4) and "concatenated" in description
    assert rec.content_dim == 10
    # i55 nobody interacted with; a new item "fresh" carrying i55's concatenated content scores as i55 does.
    i55 = int(np.flatnonzero(rec.item_ids == "i55")[0])
    user = str(dataset.user_ids[0])
    top = rec.recommend(user, k=dataset.num_items + 1, new_items={"fresh": content[i55]})
    scores = {r["item"]: r["score"] for r in top}
    assert scores["fresh"] == pytest.approx(scores["i55"], rel=1e-5, abs=1e-6)
    # ... and differs from an item of other content.
    other = int(np.flatnonzero(rec.item_ids == "i51")[0])
    assert not np.array_equal(content[other], content[i55])
    assert scores["fresh"] != pytest.approx(scores["i51"], rel=1e-5, abs=1e-6)
