"""CNN-PerMLP: the personalized layer and post-wise BPR on hand-set weights, patches (eq. 2)
against a hand computation, the leave-posts-out split, F1 / P / R @ K by hand."""
import math

import numpy as np
import pytest
import tensorflow as tf

from tfvrec import config as config_lib
from tfvrec.models.cnn_permlp import evaluation, patches
from tfvrec.models.cnn_permlp.config import CNNPerMLPConfig
from tfvrec.models.cnn_permlp.layers import ColourHistogram, PersonalizedDense
from tfvrec.models.cnn_permlp import model as cnn_permlp_model
from tfvrec.models.cnn_permlp.model import CNNPerMLP
from tfvrec.models.cnn_permlp.posts import Posts, split_posts


def softplus(x):
    return math.log1p(math.exp(x))


def test_personalized_layer_worked_by_hand():
    layer = PersonalizedDense(3, trained_users=[1.0, 1.0, 0.0])
    z = tf.constant([[1.0, -2.0], [0.5, 3.0], [1.0, 1.0]])
    layer([z, tf.constant([0, 1, 2], tf.int64)])
    layer.w.assign([2.0, 0.5])
    layer.b.assign([0.1, -0.2])
    layer.V.assign([[1.0, 0.0], [-3.0, 1.0], [100.0, 100.0]])
    out = layer([z, tf.constant([0, 1, -1], tf.int64)]).numpy()
    # ψ_j = relu(b_j + w_j z_j + V_uj): element-wise, not a dense matrix
    # user 0: [0.1 + 2 + 1, -0.2 - 1 + 0] = [3.1, 0]; user 1: [0.1 + 1 - 3, -0.2 + 1.5 + 1] = [0, 2.3]
    # a new user (-1): the mean row of the trained users 0 and 1 ([-1, 0.5]; user 2 has no posts):
    # [0.1 + 2 - 1, -0.2 + 0.5 + 0.5] = [1.1, 0.8]
    np.testing.assert_allclose(out, [[3.1, 0.0], [0.0, 2.3], [1.1, 0.8]], atol=1e-6)
    plain = PersonalizedDense(3, personalized=False)
    plain([z, tf.constant([0, 1, 2], tf.int64)])
    assert [w.name.split("/")[-1].split(":")[0] for w in plain.weights] == ["w", "b"]


def test_colour_histogram_counts_pixels_per_bin():
    pixels = np.zeros((1, 2, 2, 3), np.uint8)
    pixels[0, 0, 0] = [255, 0, 0]  # bin (3, 0, 0) = 48
    pixels[0, 0, 1] = [255, 0, 0]
    pixels[0, 1, 1] = [70, 130, 250]  # bins (1, 2, 3) = 16 + 8 + 3 = 27
    hist = ColourHistogram(4)(tf.constant(pixels)).numpy()[0]
    assert hist.shape == (64,)
    assert hist[48] == 0.5 and hist[27] == 0.25 and hist[0] == 0.25 and hist.sum() == pytest.approx(1.0)


def test_patches_are_the_corners_and_centre_of_an_aspect_preserving_square():
    # A 4 × 6 image: resized to a square of side 4 it is unchanged in height, so the square is
    # the centre 4 columns; patches of 2: top-left, centre, bottom-right.
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    squared = patches.square(tf.constant(image), 4).numpy()
    np.testing.assert_array_equal(squared, image[:, 1:5])
    cut = patches.cut(tf.constant(squared), 2, 3).numpy()
    np.testing.assert_array_equal(cut[0], squared[:2, :2])
    np.testing.assert_array_equal(cut[1], squared[1:3, 1:3])
    np.testing.assert_array_equal(cut[2], squared[2:, 2:])
    np.testing.assert_array_equal(patches.cut(tf.constant(squared), 2, 1).numpy()[0], squared[1:3, 1:3])
    # A larger image is resized so that its shorter side is the square's side.
    assert patches.square(tf.constant(np.zeros((40, 90, 3), np.uint8)), 20).shape == (20, 20, 3)


@pytest.mark.parametrize("experiment, sides", [
    # Table 2 with valid convolutions, pools keeping a last partial block (⌈n / p⌉), by hand:
    # NUS-WIDE 75: conv 6/3 → 24, pool 2 → 12, conv 6/2 → 4, pool 2 → 2, conv 2/1 → 1.
    ("cnn_permlp", [24, 12, 4, 2, 1]),
    # Flickr-PTR 50: conv 5/2 → 23, pool 2 → 12, conv 5/1 → 8, pool 3 → 3, conv 3/1 → 1.
    ("cnn_permlp_50", [23, 12, 8, 3, 1]),
])
def test_table_2_networks_leave_m_128_features(experiment, sides):
    """z ∈ R^m with m = 128 (1 × 1 × 128 kernels) in both of Table 2's settings, not 2,048 ('same' padding)."""
    from tfvrec.models.cnn_permlp.config import feature_map_side
    from tfvrec.models.cnn_permlp.model import build_network
    section = config_lib.get_experiment(experiment).model.cnn_permlp
    network = build_network(section, num_users=3, num_items=4, num_tags=5)
    got = [network.get_layer(name).output.shape[1] for name in ("conv1", "pool1", "conv2", "pool2", "conv3")]
    assert got == sides
    assert network.get_layer("z").output.shape[-1] == 128 and feature_map_side(section) == 1


def test_synthetic_network_builds_and_a_network_without_feature_map_is_refused():
    """The shipped synthetic config (24 × 24 patches, kernels 5/3/2, strides 2/1/1, pools 2/2):
    24 → 10 → 5 → 3 → 2 → 1, m = 128. Kernels that leave nothing are one ConfigError naming the key."""
    import os
    from tfvrec.errors import ConfigError
    from tfvrec.models.cnn_permlp.model import build_network
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    config = config_lib.load_config(os.path.join(repo, "configs", "cnn_permlp_synthetic.yaml"))
    network = build_network(config.model.cnn_permlp, num_users=3, num_items=4, num_tags=5)
    assert network.get_layer("z").output.shape[-1] == 128
    with pytest.raises(ConfigError, match="model.cnn_permlp.conv_kernels.*leaves no feature map"):
        config_lib.load_config(os.path.join(repo, "configs", "cnn_permlp_synthetic.yaml"),
                               ["model.cnn_permlp.conv_kernels=[5,3,3]"])


def tiny_posts():
    return Posts(user=np.array([0, 0, 1]), item=np.array([0, 1, 2]),
                 tags=[np.array([0, 1], np.int32), np.array([2], np.int32), np.array([1, 3], np.int32)],
                 split=np.array(["train", "train", "test"]), tag_ids=np.array(["a", "b", "c", "d"]),
                 num_users=2, num_items=3)


def tiny_model(features="histogram", **overrides):
    section = CNNPerMLPConfig(cnn="custom", patch_size=2, square_size=4, conv_kernels=[1, 1, 2],
                              conv_strides=[1, 1, 1], pool_sizes=[1, 1], filters=[2, 2, 2], hidden_units=3,
                              features=features, histogram_bins=2, embedding_dim=2, **overrides)
    rng = np.random.default_rng(0)
    table = rng.integers(0, 256, size=(3, 3, 2, 2, 3)).astype(np.uint8)
    model = CNNPerMLP(section, tiny_posts(), table, np.arange(3))
    model(model.example_input())
    return model


def test_prediction_averages_the_tag_scores_over_the_patches():
    model = tiny_model("cnn")
    scores = model.score_posts([0, 1], [2, 0])
    for row, (user, item) in enumerate([(0, 2), (1, 0)]):
        per_patch = [model.network({"user": tf.constant([user], tf.int64),
                                    "patch": model.patch_table[item][q][None]}).numpy()[0] for q in range(3)]
        np.testing.assert_allclose(scores[row], (per_patch[0] + per_patch[1] + per_patch[2]) / 3, rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("architecture", ["permlp", "pitf"])
@pytest.mark.parametrize("unseen", ["zero", "mean", "init"])
def test_unseen_item_and_user_fallbacks_are_what_the_keys_say(unseen, architecture):
    """tiny_posts: items 0 and 1 and user 0 have training posts; item 2 and user 1 only a test post, so
    their rows never left their initial values. At scoring time such a row is read as unseen_item /
    unseen_user say: zero, the mean of the trained rows, or the row as initialised; a trained row is
    unchanged, and in training (where only trained rows appear) the lookup is plain."""
    from tfvrec.models.cnn_permlp.model import set_trained_rows
    model = tiny_model("embedding", architecture=architecture, unseen_item=unseen, unseen_user=unseen)
    set_trained_rows(model.network, model.posts)
    tables = {"item": "item_factors" if architecture == "pitf" else "item_vector",
              "user": "user_factors" if architecture == "pitf" else "personalized"}
    layer = model.network.get_layer(tables["item"])
    raw = layer.embeddings.numpy()
    expected = {"zero": np.zeros(2), "mean": (raw[0] + raw[1]) / 2, "init": raw[2]}[unseen]
    ids = tf.constant([2, 0, 1], tf.int64)
    got = layer(ids).numpy()
    np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[1:], raw[[0, 1]], rtol=1e-6)  # seen items: their own vectors
    np.testing.assert_allclose(layer(ids, training=True).numpy(), raw[[2, 0, 1]], rtol=1e-6)
    users = tf.constant([1, 0, -1], tf.int64)
    if architecture == "pitf":
        user_layer = model.network.get_layer("user_factors")
        table, got = user_layer.embeddings.numpy(), user_layer(users).numpy()
    else:
        user_layer = model.network.get_layer("personalized")
        table, got = user_layer.V.numpy(), user_layer.user_term(users).numpy()
    # user 1 (no training post) and user -1 (unknown): the fallback; -1 has no initial row, "init" gives it the mean
    fallback = {"zero": np.zeros(2), "mean": table[0], "init": table[1]}[unseen]
    np.testing.assert_allclose(got[0], fallback, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[1], table[0], rtol=1e-6)
    np.testing.assert_allclose(got[2], np.zeros(2) if unseen == "zero" else table[0], rtol=1e-6, atol=1e-7)
    # A post on the new item is scored as if the item's vector were the fallback.
    post = {"user": tf.constant([0], tf.int64), "item": tf.constant([2], tf.int64)}
    scores = model.network(post).numpy()
    layer.embeddings.assign(np.vstack([raw[:2], expected[None]]).astype(np.float32))
    layer.set_trained(np.ones(3))
    np.testing.assert_allclose(model.network(post).numpy(), scores, rtol=1e-5, atol=1e-6)


def test_unseen_keys_are_checked():
    from tfvrec.errors import ConfigError
    with pytest.raises(ConfigError, match="model.cnn_permlp.unseen_item.*'zero', 'mean', 'init'"):
        config_lib.load_config(None, ["model.cnn_permlp.unseen_item=random"], experiment="cnn_permlp")
    assert config_lib.get_experiment("cnn_permlp").model.cnn_permlp.unseen_user == "mean"


def test_postwise_bpr_loss_is_the_mean_over_each_posts_pairs():
    model = tiny_model("embedding")
    batch = {"user": tf.constant([0, 1], tf.int64), "item": tf.constant([0, 2], tf.int64),
             # post 0: T+ = {0, 1}, T− = {2, 3}; post 1: T+ = {3}, T− = {0} (a padded slot, a clashing draw)
             "tags": tf.constant([[0, 1, 2, 3], [3, 0, 0, 3]], tf.int32),
             "labels": tf.constant([[1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, -1.0]])}
    s = model.network({"user": batch["user"], "item": batch["item"]}).numpy().astype(np.float64)
    post0 = np.mean([softplus(-(s[0, p] - s[0, n])) for p in (0, 1) for n in (2, 3)])
    post1 = softplus(-(s[1, 3] - s[1, 0]))
    assert float(model.compute_loss(batch)) == pytest.approx((post0 + post1) / 2, rel=1e-5)


@pytest.mark.parametrize("features", ["embedding", "cnn"])
def test_network_l2_is_lambda_on_the_rows_a_post_touches_and_every_other_weight(features):
    """§4.2's λ for the network: the mean over the batch of ‖V κ_u‖² (+ ‖z_i‖² of a learned item
    vector) plus, once per step, ‖θ‖² of every other weight but the biases."""
    lam = 1e-3
    plain, model = tiny_model(features), tiny_model(features, l2=lam)
    for a, b in zip(model.network.weights, plain.network.weights):
        a.assign(b)
    key = "item" if features == "embedding" else "patch"
    batch = {"user": tf.constant([0, 1], tf.int64), "item": tf.constant([0, 2], tf.int64),
             "patch": tf.constant(plain.patch_table[[0, 2], 0]),
             "tags": tf.constant([[0, 1, 2, 3], [3, 0, 0, 3]], tf.int32),
             "labels": tf.constant([[1.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, -1.0]])}
    batch = {k: v for k, v in batch.items() if k != ("patch" if key == "item" else "item")}
    net = model.network
    V = net.get_layer("personalized").V.numpy()
    rows = (V[[0, 1]] ** 2).sum(1)
    if key == "item":
        rows = rows + (net.get_layer("item_vector").embeddings.numpy()[[0, 2]] ** 2).sum(1)
    others = sum(float((w.numpy() ** 2).sum()) for w in net.trainable_weights
                 if w.name.split("/")[-1].split(":")[0] in ("kernel", "w"))
    expected = float(plain.compute_loss(batch)) + lam * rows.mean() + lam * others
    assert float(model.compute_loss(batch)) == pytest.approx(expected, rel=1e-5)


def test_count_mixture_adds_the_users_and_the_items_tag_frequencies():
    posts = Posts(user=np.array([0, 0, 1, 2, 0]), item=np.array([0, 1, 2, 2, 2]),
                  tags=[np.array([0, 1], np.int32), np.array([0], np.int32), np.array([2, 3], np.int32),
                        np.array([3], np.int32), np.array([1], np.int32)],
                  split=np.array(["train", "train", "train", "train", "test"]),
                  tag_ids=np.array(["a", "b", "c", "d"]), num_users=3, num_items=3)
    scores = evaluation.count_mixture_scores(posts, [0, 0], [2, 1])
    # user 0's training tags a, b, a → [2/3, 1/3, 0, 0]; item 2's (users 1, 2): c, d, d → [0, 0, 1/3, 2/3]
    np.testing.assert_allclose(scores[0], [2 / 3, 1 / 3, 1 / 3, 2 / 3], atol=1e-5)
    np.testing.assert_allclose(scores[1], [2 / 3 + 1, 1 / 3, 0, 0], atol=1e-5)  # item 1: a
    other = evaluation.count_mixture_scores(posts, [1], [1])  # user 1 (c, d) on item 1 (a)
    np.testing.assert_allclose(other[0], [1, 0, 1 / 2, 1 / 2], atol=1e-5)


def test_training_batches_hold_one_patch_a_post_its_tags_and_sampled_negatives():
    model = tiny_model("cnn")
    config = config_lib.get_experiment("cnn_permlp")
    config.trainer.batch_size = 8
    model.section.negatives = 3
    ds, steps = cnn_permlp_model.training_inputs(config, None, model, seed=3)
    assert steps == 1
    batch = next(iter(ds))
    again = next(iter(cnn_permlp_model.training_inputs(config, None, model, seed=3)[0]))
    np.testing.assert_array_equal(batch["patch"].numpy(), again["patch"].numpy())  # a pure function of the seed
    assert batch["patch"].shape == (8, 2, 2, 3) and batch["tags"].shape == (8, 2 + 3)
    users, tags, labels = batch["user"].numpy(), batch["tags"].numpy(), batch["labels"].numpy()
    posts = model.posts
    for n in range(8):
        positives = set(tags[n][labels[n] == 1])
        assert users[n] == 0 and positives in ({0, 1}, {2})  # user 0's training posts (user 1 has none)
        assert not positives & set(tags[n][labels[n] == 0])  # a negative never is one of the post's tags
        image = [i for i in (0, 1) if set(posts.tags[i]) == positives][0]
        assert any((batch["patch"].numpy()[n] == model.patch_table[image][q]).all() for q in range(3))


def test_leave_posts_out_split_per_user():
    section = CNNPerMLPConfig(test_fraction=0.2, holdout_fraction=0.25, min_user_posts=2)
    users = np.repeat([0, 1, 2], [10, 5, 1])
    split = split_posts(users, section)
    assert (split[users == 0] == "test").sum() == 2 and (split[users == 0] == "holdout").sum() == 2
    assert (split[users == 1] == "test").sum() == 1 and (split[users == 1] == "holdout").sum() == 1
    assert list(split[users == 2]) == ["train"]  # one post: kept for training
    fixed = split_posts(users, CNNPerMLPConfig(test_posts=2, holdout_fraction=0.0))
    assert [(fixed[users == u] == "test").sum() for u in (0, 1, 2)] == [2, 2, 0]
    np.testing.assert_array_equal(split, split_posts(users, section))  # seeded


def test_f1_precision_recall_at_k_by_hand():
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    truth = [np.array([0, 2]), np.array([0])]
    metrics, per_post = evaluation.ranking_metrics(scores, truth, ks=(1, 2))
    # post 0 ranks 0, 1, 3, 2: one hit at K=1 and K=2; post 1 ranks 3, 2, 1, 0: none
    assert metrics["precision@1"] == pytest.approx(0.5) and metrics["recall@1"] == pytest.approx(0.25)
    assert metrics["f1@1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert metrics["precision@2"] == pytest.approx(0.25) and metrics["recall@2"] == pytest.approx(0.25)
    np.testing.assert_allclose(per_post["f1@2"], [2 * 1 / (2 + 2), 0.0])


def test_counting_baselines():
    posts = tiny_posts()
    mp = evaluation.popularity_scores(posts, [1])
    np.testing.assert_array_equal(mp, [[1, 1, 1, 0]])
    mpu = evaluation.user_popularity_scores(posts, [0, 1])
    assert np.argmax(mpu[0]) in (0, 1, 2) and mpu[0][3] < 1  # user 0's tags first
    assert (mpu[1] < 1).all()  # user 1 has no training posts: MP, scaled below one use


def image_dataset(tmp_path, broken=False):
    """Three users tagging three image files (one of them not an image when ``broken``)."""
    import pandas as pd

    from tfvrec.data.dataset import load_dataset, write_dataset
    names = []
    for n in range(3):
        path = tmp_path / f"img{n}.png"
        pixels = np.full((6, 9, 3), 40 * n, np.uint8)
        path.write_bytes(b"truncated" if broken and n == 2 else tf.io.encode_png(pixels).numpy())
        names.append(str(path))
    users = pd.DataFrame({"user": ["a", "b", "c"]})
    items = pd.DataFrame({"item": ["i0", "i1", "i2"], "image": names})
    likes = pd.DataFrame({"user": ["a", "b", "c"], "item": ["i0", "i1", "i2"]})
    tags = pd.DataFrame({"user": ["a", "a", "b", "c", "c"], "item": ["i0", "i1", "i1", "i2", "i2"],
                         "tag": ["x", "x", "x", "x", "y"]})
    return load_dataset(write_dataset(str(tmp_path / "data"), users, items, {"train": likes}, post_tags=tags))


def test_posts_from_image_files_and_a_broken_image_named(tmp_path):
    from tfvrec.data.errors import DataError
    from tfvrec.models.cnn_permlp.model import load_images
    from tfvrec.models.cnn_permlp.posts import build_posts
    section = CNNPerMLPConfig(cnn="custom", patch_size=4, square_size=6, min_tag_count=2, test_fraction=0.0,
                              holdout_fraction=0.0)
    dataset = image_dataset(tmp_path)
    posts = build_posts(dataset, section)
    assert list(posts.tag_ids) == ["x"] and len(posts.user) == 4  # "y" (used once) dropped with nothing else
    table, row = load_images(dataset, posts, section)
    assert table.shape == (3, 3, 4, 4, 3) and (table[row[1]] == 40).all()
    (tmp_path / "data").rename(tmp_path / "old")
    with pytest.raises(DataError, match="img2.png.*not an image"):
        load_images(image_dataset(tmp_path, broken=True), posts, section)


def test_topic_palettes_share_colours_and_change_nothing_else():
    """The synthetic knob of this model's world: topics share palettes, and every other table stays the
    same (it is applied after every random draw, so its default 0 is the world of before)."""
    from tfvrec.data.synthetic import SyntheticWorldConfig, generate_world
    small = dict(num_users=20, num_items=60, num_creators=8, num_topics=4, num_artists=6, min_likes_per_user=3,
                 mean_likes_per_user=6.0, image_noise=0.0, num_groups=4)
    plain, shared = generate_world(SyntheticWorldConfig(**small)), generate_world(
        SyntheticWorldConfig(**small, topic_palettes=1))
    for key in ("post_tags", "interactions", "social"):
        a, b = plain[key], shared[key]
        if isinstance(a, dict):
            assert all(a[s].equals(b[s]) for s in a)
        else:
            assert a.equals(b)
    assert not np.array_equal(plain["images"][1], shared["images"][1])

