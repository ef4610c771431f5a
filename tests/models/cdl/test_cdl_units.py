"""CDL's pieces on hand-set weights: D (eq. 2), the losses of eq. 5 and the hinge, √w ⊙ L2 ranking,
user vectors (§4), negatives (§5), the paper split (§6) and the candidates:N protocol."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfvrec import losses
from tfvrec.evaluation import protocols
from tfvrec.models.cdl import config as cdl_config
from tfvrec.models.cdl import model as cdl
from tfvrec.models.cdl.baselines import BordaScorer, centred_unit_vectors, colour_histograms
from tfvrec.models.cdl.protocol import paper_split
from tfvrec.data.dataset import Dataset
from tfvrec.models.cdl.user_vectors import build_user_vectors, kmeans, normalise, ppmi_svd


def _config(**overrides):
    c = cdl_config.CDLConfig(image_size=16, conv_filters=[2, 2, 2, 2, 2], conv_kernels=[3, 3, 3, 3, 3],
                             fc_units=[4], embedding_dim=3, distance_dropout=0.0, dropout=0.0)
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def test_distance_is_the_weighted_squared_difference_and_its_weights_stay_non_negative():
    net = cdl.distance_net(3, dropout=0.5)
    layer = net.get_layer("weights")
    layer.kernel.assign([[2.0], [0.0], [0.5]])
    phi = np.array([[1.0, 2.0, 3.0]], np.float32)
    pi = np.array([[0.0, 0.0, 1.0]], np.float32)
    # D = 2·1² + 0·2² + 0.5·2² = 4 (dropout is off outside training)
    np.testing.assert_allclose(net([phi, pi]).numpy(), [4.0], atol=1e-6)
    assert layer.kernel_constraint is not None
    np.testing.assert_allclose(layer.kernel_constraint(tf.constant([[-1.0], [2.0]])).numpy(), [[0.0], [2.0]])


@pytest.mark.parametrize("name, expected", [
    # o = D+ − D− = 1 − 3 = −2: CE (eq. 5) softplus(o) = log(1 + e^-2); hinge max(0, 1 + o) = 0.
    ("logistic", np.log1p(np.exp(-2.0))),
    ("hinge", 0.0),
])
def test_losses_golden_on_scores_minus_d(name, expected):
    d_pos, d_neg = 1.0, 3.0
    loss = losses.get(name, margin=1.0)
    np.testing.assert_allclose(loss.call(tf.constant([[1.0, 0.0]]), tf.constant([[-d_pos, -d_neg]])).numpy(),
                               [expected], atol=1e-6)
    # the wrong way round: o = +2 → softplus(2), hinge 3
    worse = {"logistic": np.log1p(np.exp(2.0)), "hinge": 3.0}[name]
    np.testing.assert_allclose(loss.call(tf.constant([[1.0, 0.0]]), tf.constant([[-d_neg, -d_pos]])).numpy(),
                               [worse], atol=1e-6)


def test_ranking_by_d_equals_ranking_by_l2_of_sqrt_w_scaled_vectors():
    rng = np.random.default_rng(0)
    d = 16
    w = np.abs(rng.normal(size=d)).astype(np.float32)
    w[::5] = 0.0  # zero weights too
    phi = rng.normal(size=(8, d)).astype(np.float32)
    pi = rng.normal(size=(300, d)).astype(np.float32)
    net = cdl.distance_net(d, dropout=0.5)
    net.get_layer("weights").kernel.assign(w[:, None])
    D = np.stack([net([np.repeat(p[None], len(pi), 0), pi]).numpy() for p in phi])
    s = np.sqrt(w)
    l2 = ((s * phi)[:, None, :] - (s * pi)[None]) ** 2
    np.testing.assert_allclose(D, l2.sum(-1), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.argsort(D, axis=1, kind="stable")[:, :50],
                                  np.argsort(l2.sum(-1), axis=1, kind="stable")[:, :50])


def test_triple_network_shares_one_image_tower_and_golden_scores():
    c = _config()
    model = cdl.CDL(c, np.eye(4, dtype=np.float32)[:2], np.zeros((5, 16, 16, 3), np.uint8))
    towers = [layer for layer in model.triple.layers if isinstance(layer, tf.keras.Model)]
    assert [t.name for t in towers].count("image_tower") == 1
    for v in model.image_model.trainable_variables + model.user_model.trainable_variables:
        v.assign(tf.zeros_like(v))
    model.user_model.layers[-1].bias.assign([1.0, 2.0, 0.0])
    model.distance_model.get_layer("weights").kernel.assign([[1.0], [0.5], [3.0]])
    # φ = (1, 2, 0), π = 0 → D = 1 + 0.5·4 = 3, score −3 for every item
    np.testing.assert_allclose(model.score(np.array([0, 1]), np.array([[0, 1], [2, 4]])), -3.0, atol=1e-6)


def test_user_tower_has_fig2s_four_fc_layers_in_cdl_paper_and_by_default():
    """Fig. 2's user sub-network is FC2_1..FC2_4 (four FC layers to d = 1024); `user_units` sets the
    hidden widths, so the depth is configurable, and the CPU default keeps the paper's depth."""
    from tfvrec import config as config_lib

    def dense(c):
        tower = cdl.user_tower(c.num_clusters, c)
        return [(layer.units, layer.activation.__name__) for layer in tower.layers
                if isinstance(layer, tf.keras.layers.Dense)]
    paper = config_lib.get_experiment("cdl_paper").model.cdl
    assert dense(paper) == [(1024, "relu")] * 3 + [(1024, "linear")]
    default = config_lib.get_experiment("cdl").model.cdl
    assert dense(default) == [(128, "relu")] * 3 + [(default.embedding_dim, "linear")]
    assert dense(_config(user_units=[], num_clusters=4)) == [(3, "linear")]  # one linear layer when asked


def test_user_vectors_from_tag_clusters():
    items = [["a", "b"], ["a", "b"], ["c", "d"], ["c", "d"], ["a"], ["d"]]
    vocabulary = np.array(["a", "b", "c", "d"], object)
    vectors = ppmi_svd(items, vocabulary, dim=2)
    labels = kmeans(vectors, 2, 50)
    assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2]
    np.testing.assert_allclose(normalise([[1.0, 3.0], [0.0, 0.0]]), [[0.25, 0.75], [0.0, 0.0]])


def hand_made(post_tags, interactions, item_tags, social=None, groups=None, num_users=3):
    """A `Dataset` of ``num_users`` users u0.. and ``len(item_tags)`` items i0..; ``interactions``
    {split: [(user, item)]}, ``post_tags`` [(user, item, tag string)]."""
    tag_ids = np.array(sorted({t for _, _, t in post_tags}), object)
    code = {t: n for n, t in enumerate(tag_ids)}

    def frame(rows, columns):
        return pd.DataFrame(np.asarray(rows, np.int64).reshape(-1, len(columns)), columns=columns)
    return Dataset(
        path="<hand-made>", name="hand-made", user_ids=np.array([f"u{n}" for n in range(num_users)]),
        item_ids=np.array([f"i{n}" for n in range(len(item_tags))]),
        interactions={s: frame(rows, ["user", "item"]) for s, rows in interactions.items()},
        item_creator=np.full(len(item_tags), -1), item_artist=np.full(len(item_tags), -1), artist_ids=np.array([]),
        item_tags=[list(t) for t in item_tags], item_image=np.array([""] * len(item_tags)),
        social=None if social is None else frame(social, ["user", "followed"]),
        post_tags=frame([(u, i, code[t]) for u, i, t in post_tags], ["user", "item", "tag"]) if post_tags else None,
        tag_ids=tag_ids if post_tags else None, groups=None if groups is None else frame(groups, ["group", "user"]),
        group_ids=None if groups is None else np.array([f"g{n}" for n in range(max(g for g, _ in groups) + 1)]))


def test_a_tag_posted_on_a_held_out_item_changes_no_user_vector():
    """§5's user vector reads the training interactions only: user 0's tags on item 3, a held-out (test)
    favourite — an existing tag and a new one — change no user's vector, no cluster and no item's tag
    counts; the same tags on a training favourite (item 1) do change user 0's vector."""
    items = [["cat", "pet"], ["cat"], ["car", "road"], ["car"], ["pet"], ["road"]]
    interactions = {"train": [(0, 0), (0, 1), (1, 2), (1, 4), (2, 5), (2, 3)], "test": [(0, 3), (1, 5)]}
    base = [(0, 0, "kitten"), (1, 2, "fast"), (2, 5, "fast")]
    c = cdl_config.CDLConfig(num_clusters=3, tag_vector_dim=3)
    before = build_user_vectors(hand_made(base, interactions, items), c)
    leaked = build_user_vectors(hand_made(base + [(0, 3, "fast"), (0, 3, "speed")], interactions, items), c)
    np.testing.assert_array_equal(leaked.user_vectors, before.user_vectors)
    np.testing.assert_array_equal(leaked.item_counts, before.item_counts)
    assert list(leaked.vocabulary) == list(before.vocabulary) and "speed" not in leaked.vocabulary
    # also with the trainer's train_holdout as the held-out split
    holdout = dict(interactions, train_holdout=[(0, 1)])
    holdout["train"] = [p for p in interactions["train"] if p != (0, 1)]
    np.testing.assert_array_equal(
        build_user_vectors(hand_made(base + [(0, 1, "fast")], holdout, items), c).user_vectors,
        build_user_vectors(hand_made(base, holdout, items), c).user_vectors)
    trained = build_user_vectors(hand_made(base + [(0, 1, "fast")], interactions, items), c)
    assert not np.array_equal(trained.user_vectors[0], before.user_vectors[0])


# §5's negatives, on a hand-made table. User 0 likes item 0 (tag a) and tagged item 1 "b" (an item they never
# liked: tagging history) and held-out item 8 "d" (a test favourite); u0 follows u1, who likes item 2; u0 and u2
# are in group g0, u2 likes item 3; u3 follows u0 (not the other way) and likes item 4. Items 5 (a) and 6 (b)
# carry u0's interest tags, item 9 carries "d", the tag u0 put only on the held-out item.
NEG_ITEMS = [["a"], ["x"], ["x2"], ["x3"], ["x4"], ["a", "y"], ["b"], ["c"], ["e"], ["d"]]
NEG_LIKES = {"train": [(0, 0), (1, 2), (2, 3), (3, 4)], "test": [(0, 8)]}
NEG_TAGS = [(0, 1, "b"), (0, 8, "d")]


def negative_table(social=((0, 1), (3, 0)), groups=((0, 0), (0, 2))):
    return hand_made(NEG_TAGS, NEG_LIKES, NEG_ITEMS, social=list(social) if social else None,
                     groups=list(groups) if groups else None, num_users=4)


def pool_of(pools, user):
    return pools.items[pools.splits[user]:pools.splits[user + 1]].tolist()


def test_negatives_avoid_likes_friends_and_group_favourites_and_interest_tags():
    """§5: a negative is none of the user's likes, no friend's (followee's) favourite, no favourite of a
    member of their groups, and carries none of their interest tags (tags of their training images and
    their own tags). By hand for user 0: not 0 (liked), 2 (friend u1's), 3 (group-mate u2's), 1, 5, 6
    (tags a, b); item 4 stays (u3 follows u0, u0 does not follow u3), and so do 8 and 9: "d" is a tag u0
    put on a held-out favourite only, which is no interest the training data shows."""
    from tfvrec.models.cdl.sampling import negative_pools
    pools = negative_pools(negative_table(), cdl_config.CDLConfig(min_negatives=1))
    assert pools.rules == ["friends", "groups", "interest tags"]
    assert pool_of(pools, 0) == [4, 7, 8, 9]
    assert pools.relaxed == {"interest tags": 0, "groups": 0, "friends": 0, "none left": 0}
    # Each rule is what removes its items: switched off one at a time, they come back.
    for key, back in (("exclude_friends", [2]), ("exclude_groups", [3]), ("exclude_interest_tags", [1, 5, 6])):
        pools = negative_pools(negative_table(), cdl_config.CDLConfig(min_negatives=1, **{key: False}))
        assert pool_of(pools, 0) == sorted([4, 7, 8, 9] + back), key
    # Without friends or groups in the data, those rules are skipped (and logged), the others hold.
    pools = negative_pools(negative_table(social=None, groups=None), cdl_config.CDLConfig(min_negatives=1))
    assert pools.rules == ["interest tags"] and pool_of(pools, 0) == [2, 3, 4, 7, 8, 9]
    # Unreadable images are never negatives.
    usable = np.ones(10, bool)
    usable[7] = False
    assert pool_of(negative_pools(negative_table(), cdl_config.CDLConfig(min_negatives=1), usable), 0) == [4, 8, 9]


@pytest.mark.parametrize("min_negatives, pool, relaxed", [
    # relaxed: users for whom (interest tags, groups, friends) were dropped. By hand: u1 keeps 9 items under
    # every rule, u2 and u3 keep 8 (u2: not 0 (group-mate u0's), 3; u3: not 0 (followee u0's), 4).
    (4, [4, 7, 8, 9], (0, 0, 0)),  # the rules leave u0 4 items: enough
    (5, [1, 4, 5, 6, 7, 8, 9], (1, 0, 0)),  # u0: first the interest tags are relaxed
    (8, [1, 3, 4, 5, 6, 7, 8, 9], (1, 1, 0)),  # u0: then the groups
    # u0: then the friends (never the user's own likes); u2 relaxes interest tags and groups, u3 all three
    (9, [1, 2, 3, 4, 5, 6, 7, 8, 9], (3, 3, 2)),
    (50, [1, 2, 3, 4, 5, 6, 7, 8, 9], (3, 3, 2)),  # fewer items than asked: all but the likes
])
def test_negative_rules_are_relaxed_in_order_below_min_negatives(min_negatives, pool, relaxed):
    from tfvrec.models.cdl.sampling import negative_pools
    pools = negative_pools(negative_table(), cdl_config.CDLConfig(min_negatives=min_negatives))
    assert pool_of(pools, 0) == pool
    assert pools.relaxed == dict(zip(["interest tags", "groups", "friends"], relaxed), **{"none left": 0})


def test_triplets_pair_a_training_like_with_a_negative_of_the_users_pool():
    """Every triplet (u, I+, I−) of an epoch: I+ a training like of u, I− from u's §5 pool; exactly
    `triplets_per_user` triplets for every user with a training like."""
    from tfvrec.models.cdl.sampling import TripletSampler
    sampler = TripletSampler(negative_table(), cdl_config.CDLConfig(min_negatives=1, triplets_per_user=7))
    users, positives, negatives = sampler.epoch(seed=3, epoch=0)
    likes = {0: {0}, 1: {2}, 2: {3}, 3: {4}}
    assert sorted(np.bincount(users).tolist()) == [7, 7, 7, 7]
    for u, p, n in zip(users, positives, negatives):
        assert p in likes[u] and n in pool_of(sampler.pools, u) and n not in likes[u]
    assert set(negatives[users == 0]) <= {4, 7, 8, 9}


def test_interest_candidates_draw_the_others_from_items_sharing_an_interest_tag():
    """§5: "each candidate shall have at least one tag of the user's interests". On the negatives' table,
    user 0's interest tags are a (item 0, liked) and b (their own tag on item 1), so the items sharing
    one are 0, 1, 5 (a) and 6 (b); the pool adds the held-out item 8. Ranked under
    interest_candidates:30, user 0's candidates are 8 and the pool's items they never trained on,
    1, 5, 6 (too few for 30: counted short); under candidates:30 every item but the liked 0."""
    from tfvrec import config as config_lib
    from tfvrec.evaluation import evaluator
    from tfvrec.models.cdl.protocol import interest_candidate_pool
    dataset = negative_table()
    heldout = evaluator.heldout_by_user(dataset.split("test"))
    assert {u: v.tolist() for u, v in heldout.items()} == {0: [8]}
    assert {u: v.tolist() for u, v in interest_candidate_pool(dataset, heldout).items()} == {0: [0, 1, 5, 6, 8]}
    assert evaluator.candidate_pool(dataset, "interest_candidates:30", heldout)[0].tolist() == [0, 1, 5, 6, 8]
    assert evaluator.candidate_pool(dataset, "candidates:30", heldout) is None
    seen = {}

    class Recorder:
        def score(self, users, items):
            for u, row in zip(users, items):
                seen.setdefault(int(u), set()).update(int(i) for i in row)
            return np.zeros(items.shape)
    rows = dict(evaluator.evaluate_scorers({"r": Recorder()}, dataset, heldout, ["interest_candidates:30"], [5], 2,
                                           seed=0, judged="test"))
    assert seen[0] == {1, 5, 6, 8}
    assert rows["r"].protocol == "interest_candidates:30" and rows["r"].info["users_short_of_negatives"] == 1
    seen.clear()
    evaluator.evaluate_scorers({"r": Recorder()}, dataset, heldout, ["candidates:30"], [5], 1, seed=0, judged="test")
    assert seen[0] == set(range(1, 10))
    with pytest.raises(ValueError, match="interest_candidates.*candidate_pool"):
        protocols.evaluate(Recorder(), heldout, None, 10, "interest_candidates:30", ks=(5,), repeats=1)
    with pytest.raises(ValueError, match="N > 20"):
        protocols.parse_protocol("interest_candidates:20")
    config = config_lib.load_config(None, ["eval.protocols=[candidates:100,interest_candidates:100]"],
                                    experiment="cdl")
    assert config.eval.protocols == ["candidates:100", "interest_candidates:100"]


def test_paper_split_hides_twenty_likes_of_eligible_users_only():
    likes = pd.DataFrame({"user": ["u1"] * 50 + ["u2"] * 10 + ["u3"] * 300,
                          "item": [f"i{n}" for n in range(50)] + [f"i{n}" for n in range(10)]
                          + [f"i{n}" for n in range(300)]})
    train, test = paper_split(likes, 40, 200, 20, seed=0)
    assert set(test["user"]) == {"u1"} and len(test) == 20 and len(train) == 340
    again = paper_split(likes, 40, 200, 20, seed=0)[1]
    pd.testing.assert_frame_equal(test, again)


def test_candidates_protocol_fills_twenty_heldout_items_to_n():
    assert protocols.parse_protocol("candidates:100").name == "candidates:100"
    with pytest.raises(ValueError):
        protocols.parse_protocol("candidates:20")
    seen = {}

    class Recorder:
        def score(self, users, items):
            for u, row in zip(users, items):
                seen[int(u)] = row.copy()
            return np.zeros(items.shape)
    heldout = {0: np.arange(30), 1: np.arange(30, 35)}
    exclude = {0: np.arange(100, 110), 1: np.arange(110, 120)}
    result = protocols.evaluate(Recorder(), heldout, exclude, 500, "candidates:100", ks=(20,), repeats=1, seed=0)
    assert result.info["mean_candidates_per_user"] == 100
    assert len(set(seen[0])) == 100 and len(set(seen[0]) & set(range(30))) == 20
    assert not set(seen[0]) & set(range(100, 110))
    assert len(set(seen[1])) == 100 and set(range(30, 35)) <= set(seen[1])
    # uninformative scorer: P@20 = 20/100 for user 0
    assert abs(result.metrics["precision@20"] - (0.2 + 0.05) / 2) < 0.15


def test_borda_count_and_colour_histograms():
    vectors = np.array([[0.0], [1.0], [5.0], [0.2]], np.float32)
    scorer = BordaScorer(vectors, [np.array([0])])
    # distances to item 0: item 3 (0.2) < item 1 (1) < item 2 (5) → points 2, 1, 0
    np.testing.assert_array_equal(scorer.score(np.array([0]), np.array([[1, 2, 3]])), [[1.0, 0.0, 2.0]])
    red = np.zeros((1, 2, 2, 3), np.uint8)
    red[..., 0] = 255
    hist = colour_histograms(red)
    assert hist.shape == (1, 64) and hist[0, 48] == 1.0


def test_borda_features_ranks_by_cosine_of_centred_features():
    """A planted table: feature = a large component every image shares, (0, 20), plus the image's own
    part; the own parts are (1, 0) for the profile image 0, (4, 0.3) for candidate 1 (the same look,
    stronger), (0, 0.2) for candidate 2 (a faint other look), (−5, −0.5) for candidate 3 (the opposite),
    summing to 0. Euclidean distances 3.01, 1.02, 6.02 and the plain cosines 0.990, 0.999, 0.955 both put
    the faint candidate 2 first: points (1, 2, 0). Centred on the catalogue mean and normalised, the
    cosines are 0.997, 0, −0.996: points (2, 1, 0)."""
    from types import SimpleNamespace
    from tfvrec import registry
    vectors = np.array([[1.0, 0.0], [4.0, 0.3], [0.0, 0.2], [-5.0, -0.5]], np.float32) + [0.0, 20.0]
    candidates = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(BordaScorer(vectors, [np.array([0])]).score(np.array([0]), candidates),
                                  [[1.0, 2.0, 0.0]])
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_array_equal(BordaScorer(unit, [np.array([0])]).score(np.array([0]), candidates),
                                  [[1.0, 2.0, 0.0]])
    dataset = SimpleNamespace(features=lambda name: vectors, train_items_by_user=lambda: [np.array([0])])
    config = SimpleNamespace(data=SimpleNamespace(features="planted"))
    scorer = registry.load_baselines(["borda_features"])["borda_features"](dataset, config, None)
    np.testing.assert_array_equal(scorer.score(np.array([0]), candidates), [[2.0, 1.0, 0.0]])
    # An item without an image (a zero row) stays zero and does not move the mean.
    with_blank = np.vstack([vectors, np.zeros((1, 2), np.float32)])
    unit = centred_unit_vectors(with_blank)
    np.testing.assert_allclose(unit[:4], centred_unit_vectors(vectors), atol=1e-6)
    assert not unit[4].any()


def test_config_checks():
    from tfvrec import config as config_lib
    from tfvrec.errors import ConfigError
    config = config_lib.load_config(None, ["model.cdl.embedding_dim=8"], experiment="cdl")
    assert config.trainer.optimizer == "sgd" and config.trainer.momentum == 0.9 and config.trainer.batch_size == 128
    assert config_lib.get_experiment("cdl_paper").model.cdl.image_size == 256
    with pytest.raises(ConfigError, match="model.cdl.loss' must be one of \\['logistic', 'hinge', 'retrieval', "
                       "'pointwise'\\]"):
        config_lib.load_config(None, ["model.cdl.loss=listwise"], experiment="cdl")
    with pytest.raises(ConfigError, match="conv_filters"):
        config_lib.load_config(None, ["model.cdl.conv_filters=[1,2]"], experiment="cdl")


def test_score_all_items_equals_scoring_every_candidate():
    c = _config()
    rng = np.random.default_rng(1)
    model = cdl.CDL(c, rng.random((3, 4)).astype(np.float32), rng.integers(0, 255, (7, 16, 16, 3)).astype(np.uint8),
                    usable=np.array([True] * 6 + [False]))
    model.distance_model.get_layer("weights").kernel.assign([[0.5], [2.0], [0.0]])
    users = np.array([0, 2])
    full = model.score_all(users)
    each = model.score(users, np.tile(np.arange(7), (2, 1)))
    np.testing.assert_allclose(full[:, :6], each[:, :6], rtol=1e-4, atol=1e-5)
    assert np.isneginf(full[:, 6]).all() and np.isneginf(each[:, 6]).all()


def test_retrieval_logits_are_minus_d_up_to_a_per_user_constant():
    """loss: retrieval feeds tfrs q = [2 w ⊙ φ, 1] and c = [π, −Σ w π²]: q·c = −D + Σ w φ², so each user's
    softmax over the candidates is the softmax of −D (checked on random vectors and weights)."""
    rng = np.random.default_rng(3)
    w = np.abs(rng.normal(size=5)).astype(np.float32)
    w[1] = 0.0
    phi, pi = rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(7, 5)).astype(np.float32)
    query = np.concatenate([2 * w * phi, np.ones((4, 1), np.float32)], axis=1)
    candidates = np.concatenate([pi, -(w * pi * pi).sum(1, keepdims=True)], axis=1)
    logits = query @ candidates.T
    minus_d = -((phi[:, None, :] - pi[None]) ** 2 * w).sum(-1)
    np.testing.assert_allclose(logits - minus_d, np.repeat((w * phi * phi).sum(1, keepdims=True), 7, 1), rtol=1e-5)
    softmax = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(softmax, tf.nn.softmax(minus_d).numpy(), atol=1e-6)


def test_retrieval_loss_trains_the_triple_network():
    c = _config(loss="retrieval")
    cdl_config.check(type("C", (), {"model": type("M", (), {"cdl": c})})())  # an accepted choice
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    model = cdl.CDL(c, rng.random((6, 4)).astype(np.float32), pixels)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01))
    batch = {"user": tf.constant([0, 1, 2, 3], tf.int64), "positive": tf.constant([0, 1, 2, 3], tf.int64),
             "negative": tf.constant([4, 5, 6, 7], tf.int64)}
    batch["positive_image"] = model.prepare(pixels[:4])
    batch["negative_image"] = model.prepare(pixels[4:8])
    first = float(model.train_step(batch)["loss"])
    for _ in range(30):
        last = float(model.train_step(batch)["loss"])
    assert np.isfinite(last) and last < first
    assert (model.distance_weights().numpy() >= 0).all()
