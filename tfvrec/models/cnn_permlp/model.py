"""CNN-PerMLP: personalized tag recommendation from image patches.

Nguyen, Wistuba, Grabocka, Drumond, Schmidt-Thieme, *Personalized Deep Learning for Tag
Recommendation*, PAKDD 2017.

A post p = (u, i) is a user u tagging image i; the model scores every tag t of the
vocabulary T for it, and the top-K scores are the recommendation.

1. **Patches** (eq. 2; `tfvrec.models.cnn_permlp.patches`): image i becomes an
   aspect-preserving square cut into Q = 3 patches R_{i,q} (top-left, centre,
   bottom-right). Training sees one random patch per post (Algorithm 1); a prediction is
   the mean of the tag scores over the Q patches:  ŷ(u, i, t) = avg_q ŷ'(u, R_{i,q}, t).
2. **CNN feature extractor** (eqs. 3-5, Table 2): three convolutions with 10, 30 and 128
   kernels, ReLU, a max-pool after the first two; the last feature maps, flattened, are
   z_i^q ∈ R^m. Table 2's two settings (NUS-WIDE, 75 × 75 patches; Flickr-PTR, 50 × 50)
   are config ``cnn``; the convolutions are valid (unpadded) and the pools keep a last partial
   block, which leaves a 1 × 1 × 128 map, m = 128, in both settings (`cnn_features`).
3. **Personalized fully-connected layer** (eq. 6; `layers.PersonalizedDense`):
   ψ_j = relu(b_j + w_j · z_j + (V κ_u)_j), one weight per visual feature plus the user's
   embedding V κ_u.
4. **Predictor** (eq. 7): one hidden layer of 128 ReLU units, then |T| tag scores. The
   paper writes a ReLU on the output scores too; we leave the scores linear, because a
   ReLU there gives every tag scored below zero no gradient in the pairwise loss.
5. **Post-wise BPR** (eq. 8): for a post with tags T+ and N tags T− drawn uniformly from
   the rest of the vocabulary, loss = −(1 / |T+||T−|) Σ ln σ(ŷ'(t+) − ŷ'(t−)), the mean
   over the post's pairs (`tfvrec.losses.PairwiseLogisticLoss` with
   ``list_reduction="mean"``), averaged over the batch's posts.

The trained baselines share the network and the training loop: ``personalized=False``
is the paper's CNN (eq. 6 without V κ_u); ``features="histogram"`` is CH-PerMLP (eq. 6
on a 64-bin colour histogram of the patch instead of z); ``features="embedding"``
replaces the image by a learned vector per item (tag data without images, Last.fm; an item
no training post has is read as ``unseen_item`` says, zero by default, not as its random
initial vector: `layers.FallbackEmbedding`);
``architecture="pitf"`` is PITF (Rendle & Schmidt-Thieme, WSDM 2010):
ŷ(u, i, t) = ⟨û_u, t̂^U_t⟩ + ⟨î_i, t̂^I_t⟩, trained with the same post-wise BPR. MP and
MP-u count tags (`tfvrec.models.cnn_permlp.evaluation`).
"""
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec import tasks
from tfvrec.data.errors import DataError
from tfvrec.models.base import RecommenderModel
from tfvrec.models.cnn_permlp import patches as patches_lib
from tfvrec.models.cnn_permlp.config import resolved, square_side
from tfvrec.models.cnn_permlp.layers import ColourHistogram, FallbackEmbedding, PersonalizedDense
from tfvrec.models.cnn_permlp.posts import build_posts
from tfvrec.tasks import ScoredBatch


# ----------------------------------------------------------------------------- the network (eqs. 3-7)
def cnn_features(pixels, c):
    """Table 2's CNN: patch pixels ``[B, d, d, 3]`` (0..255) → z ``[B, m]`` (eqs. 3-5).

    Valid (unpadded) convolutions; each max-pool takes non-overlapping k × k blocks and keeps a
    last partial block (Keras "same" for a pool whose stride is its size: the output side is
    ⌈n / k⌉ and the padding never wins the max — the ceil rounding of Caffe's pooling). So the
    NUS-WIDE setting maps 75 → 24 → 12 → 4 → 2 → 1 and m = 128, and Flickr-PTR's 50 → 23 → 12 →
    8 → 3 → 1, m = 128; with floor-rounded pools Flickr-PTR would leave a 2 × 2 map under its
    3 × 3 third convolution, i.e. nothing (`config.feature_map_side`)."""
    x = tf.keras.layers.Rescaling(1.0 / 255.0, name="scale")(pixels)
    for n in range(3):
        x = tf.keras.layers.Conv2D(c.filters[n], c.conv_kernels[n], strides=c.conv_strides[n], padding="valid",
                                   activation="relu", name=f"conv{n + 1}")(x)
        if n < 2:
            x = tf.keras.layers.MaxPool2D(c.pool_sizes[n], padding="same", name=f"pool{n + 1}")(x)
    return tf.keras.layers.Flatten(name="z")(x)


def build_network(section, num_users, num_items, num_tags, trained_users=None):
    """The Keras functional network of one patch: ``{"user", "patch" | "item"}`` → ŷ' ``[B, |T|]``."""
    c = resolved(section)
    user = tf.keras.Input(shape=(), dtype=tf.int64, name="user")
    if c.architecture == "pitf":
        item = tf.keras.Input(shape=(), dtype=tf.int64, name="item")
        def init():  # a new initializer per table: one instance would give every table the same values
            return tf.keras.initializers.RandomNormal(stddev=c.init_stddev)
        # Factors of users / items without a training post are read as unseen_user / unseen_item say.
        u = FallbackEmbedding(num_users, c.embedding_dim, unseen=c.unseen_user, stddev=c.init_stddev,
                              name="user_factors")(user)
        i = FallbackEmbedding(num_items, c.embedding_dim, unseen=c.unseen_item, stddev=c.init_stddev,
                              name="item_factors")(item)
        user_tag = tf.keras.layers.Dense(num_tags, use_bias=False, kernel_initializer=init(),
                                         name="tag_user_factors")
        item_tag = tf.keras.layers.Dense(num_tags, use_bias=False, kernel_initializer=init(),
                                         name="tag_item_factors")
        scores = tf.keras.layers.Add(name="scores")([user_tag(u), item_tag(i)])
        return tf.keras.Model({"user": user, "item": item}, scores, name="pitf")
    if c.features == "embedding":
        visual = tf.keras.Input(shape=(), dtype=tf.int64, name="item")
        # An item no training post has keeps its random initial vector: at scoring time it is read as
        # unseen_item says (set_trained_rows gives the mask), not as a real item.
        z = FallbackEmbedding(num_items, c.embedding_dim, unseen=c.unseen_item, stddev=0.1, name="item_vector")(visual)
        name = "item"
    else:
        visual = tf.keras.Input(shape=(c.patch_size, c.patch_size, 3), dtype=tf.uint8, name="patch")
        z = cnn_features(visual, c) if c.features == "cnn" else ColourHistogram(c.histogram_bins, name="z")(visual)
        name = "patch"
    psi = PersonalizedDense(num_users, personalized=c.personalized, trained_users=trained_users,
                            init_stddev=c.init_stddev, unseen=c.unseen_user, name="personalized")([z, user])  # eq. 6
    hidden = tf.keras.layers.Dense(c.hidden_units, activation="relu", name="hidden")(psi)  # eq. 7
    scores = tf.keras.layers.Dense(num_tags, name="scores")(hidden)
    return tf.keras.Model({"user": user, name: visual}, scores, name="cnn_permlp")


def set_trained_rows(network, posts):
    """Tell the network's learned item (and PITF user) tables which rows had training posts, so
    that the others are read as ``unseen_item`` / ``unseen_user`` say at scoring time."""
    masks = {"item_vector": posts.trained_items(), "item_factors": posts.trained_items(),
             "user_factors": posts.trained_users()}
    for layer in network.layers:
        if isinstance(layer, FallbackEmbedding):
            layer.set_trained(masks[layer.name])


# ----------------------------------------------------------------------------- the model
class CNNPerMLP(RecommenderModel):
    """The network, its training examples (Algorithm 1) and eq. 2's patch average."""

    def __init__(self, section, posts, patch_table=None, image_row=None, task=None):
        super().__init__()
        self.section = resolved(section)
        self.posts = posts
        self.num_users, self.num_items, self.num_tags = posts.num_users, posts.num_items, posts.num_tags
        self.uses_pixels = self.section.features in ("cnn", "histogram") and self.section.architecture == "permlp"
        self.patch_table = patch_table  # uint8 [n images, Q, d, d, 3] (pixel features), rows of image_row
        self.image_row = image_row  # int [num_items]: row of each item's image in patch_table, -1 none
        self.network = build_network(self.section, self.num_users, self.num_items, self.num_tags,
                                     trained_users=posts.trained_users().astype(np.float32))
        # Eq. 8, post-wise BPR: the mean over a post's (t+, t−) pairs of −ln σ(ŷ(t+) − ŷ(t−)).
        self.task = task if task is not None else tasks.build(section, list_reduction="mean")
        self.evaluation_note = describe(self.section)

    # -- scores ---------------------------------------------------------------------------
    def _visual_key(self):
        return "patch" if self.uses_pixels else "item"

    def example_input(self):
        """One post: a user and one patch of an image (or an item, without pixels)."""
        if self.uses_pixels:
            d = self.section.patch_size
            return {"user": tf.zeros([1], tf.int64), "patch": tf.zeros([1, d, d, 3], tf.uint8)}
        return {"user": tf.zeros([1], tf.int64), "item": tf.zeros([1], tf.int64)}

    def call(self, inputs, training=False):
        """ŷ' for ``{"user": [B], "patch": [B, d, d, 3]}`` (or ``"item": [B]``) → ``[B, |T|]``."""
        key = self._visual_key()
        return self.network({"user": tf.cast(inputs["user"], tf.int64), key: inputs[key]}, training=training)

    def score_patches(self, users, patches):
        """Eq. 2: users ``[B]``, patches ``[B, Q, d, d, 3]`` → tag scores ``[B, |T|]`` averaged over Q."""
        patches = tf.convert_to_tensor(patches)
        shape = tf.shape(patches)
        flat = tf.reshape(patches, tf.concat([[-1], shape[2:]], 0))
        repeated = tf.repeat(tf.cast(users, tf.int64), shape[1])
        scores = self.network({"user": repeated, "patch": flat})
        return tf.reduce_mean(tf.reshape(scores, [shape[0], shape[1], -1]), axis=1)

    def score_posts(self, users, items, batch_size=256):
        """Tag scores ``[n, |T|]`` (numpy) of posts (user, item indices), eq. 2 for image models."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        out = []
        for lo in range(0, len(users), batch_size):
            u, i = users[lo:lo + batch_size], items[lo:lo + batch_size]
            if self.uses_pixels:
                rows = self.image_row[i]
                out.append(self.score_patches(u, self.patch_table[rows]).numpy())
            else:
                out.append(self.network({"user": tf.constant(u), "item": tf.constant(i)}).numpy())
        return np.concatenate(out, 0) if out else np.zeros((0, self.num_tags), np.float32)

    # -- training (Algorithm 1, eq. 8) -----------------------------------------------------
    def training_scores(self, inputs, training=False):
        """Eq. 8's lists: a post's tags T+ then N sampled tags T− (labels 1 / 0, −1 padding), scored for
        one random patch of its image; the task averages over the post's pairs (post-wise BPR)."""
        key = self._visual_key()
        scores = self({"user": inputs["user"], key: inputs[key]}, training=training)
        listed = tf.gather(scores, inputs["tags"], batch_dims=1)  # [B, |T+| + N]
        if not self.section.l2:
            return ScoredBatch(listed, labels=inputs["labels"])
        net = self.network
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        if self.section.architecture != "pitf":
            # §4.2's L2 regularisation λ for the network: on the rows of the user (V κ_u) and item
            # (features: embedding) tables the post touches, and on every other weight — kernels of
            # the convolutions, eq. 6's w, the predictor — once per step (divided over the replicas).
            norms = tf.zeros_like(listed[:, 0])
            layer = net.get_layer("personalized")
            if layer.personalized:
                v = tf.gather(layer.V, tf.maximum(inputs["user"], 0))
                norms += tf.reduce_sum(v * v, -1)
            tables = [layer.V.ref()] if layer.personalized else []
            if key == "item":
                table = net.get_layer("item_vector").embeddings
                i = tf.gather(table, inputs["item"])
                norms += tf.reduce_sum(i * i, -1)
                tables.append(table.ref())
            weights = [w for w in net.trainable_weights if w.ref() not in tables and "bias" not in w.name
                       and w.name.split("/")[-1] not in ("b:0", "b")]
            dense = tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights]) if weights else 0.0
            return ScoredBatch(listed, labels=inputs["labels"], squared_norms=norms, l2=self.section.l2,
                               penalty=self.section.l2 * dense / replicas)
        u = net.get_layer("user_factors")(tf.maximum(inputs["user"], 0))
        i = net.get_layer("item_factors")(inputs["item"])
        # PITF's λ: on the post's user and item factors, and on the tag factor matrices once per step
        # (divided over the replicas, whose losses are summed).
        tag_factors = tf.reduce_sum(tf.square(net.get_layer("tag_user_factors").kernel)) + \
            tf.reduce_sum(tf.square(net.get_layer("tag_item_factors").kernel))
        return ScoredBatch(listed, labels=inputs["labels"], squared_norms=tf.reduce_sum(u * u, -1) +
                           tf.reduce_sum(i * i, -1), l2=self.section.l2,
                           penalty=self.section.l2 * tag_factors / tf.cast(self.num_tags, tf.float32) / replicas)

def training_inputs(config, dataset, model, seed):
    """The training stream (`tfvrec.inputs`, Algorithm 1): infinite batches of (post, one random patch,
    its tags, N sampled tags), a pure function of ``seed``: batch b draws its posts, patches and negatives
    from stateless seeds (seed, b)."""
    trainer_config = config.trainer
    rows = model.posts.rows("train")
    if not len(rows):
        raise ValueError("no training posts")
    batch, negatives, q = trainer_config.batch_size, model.section.negatives, model.section.num_patches
    steps = trainer_config.steps_per_epoch or int(np.ceil(len(rows) / batch))
    users = tf.constant(model.posts.user[rows], tf.int64)
    items = tf.constant(model.posts.item[rows], tf.int64)
    tags = tf.constant(model.posts.padded_tags(rows), tf.int32)
    n, num_tags = len(rows), model.num_tags
    table = tf.constant(model.patch_table) if model.uses_pixels else None
    image_row = tf.constant(model.image_row, tf.int64) if model.uses_pixels else None
    seed = int(seed)

    def example_batch(step):
        pick = tf.random.stateless_uniform([batch], seed=tf.stack([seed, step]), maxval=n, dtype=tf.int64)
        negative = tf.random.stateless_uniform([batch, negatives], seed=tf.stack([seed + 1, step]),
                                               maxval=num_tags, dtype=tf.int32)
        positive = tf.gather(tags, pick)
        # Only as many positive columns as this batch's largest post needs (exact, and the pairs are fewer).
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(positive >= 0, tf.int32), axis=1)), 1)
        positive = positive[:, :width]
        clash = tf.reduce_any(negative[:, :, None] == positive[:, None, :], axis=-1)
        labels = tf.concat([tf.where(positive >= 0, 1.0, -1.0), tf.where(clash, -1.0, 0.0)], axis=1)
        out = {"user": tf.gather(users, pick), "labels": labels,
               "tags": tf.concat([tf.maximum(positive, 0), negative], axis=1)}
        item = tf.gather(items, pick)
        if table is not None:
            patch = tf.random.stateless_uniform([batch], seed=tf.stack([seed + 2, step]), maxval=q,
                                                dtype=tf.int64)
            out["patch"] = tf.gather_nd(table, tf.stack([tf.gather(image_row, item), patch], axis=1))
        else:
            out["item"] = item
        return out

    ds = tf.data.Dataset.counter().map(example_batch, num_parallel_calls=1, deterministic=True)
    return ds.prefetch(2), steps


def describe(section):
    if section.architecture == "pitf":
        return "PITF (post-wise BPR)"
    what = {"cnn": "CNN features (Table 2, %d×%d patches)" % (section.patch_size, section.patch_size),
            "histogram": "colour histogram (%d bins)" % section.histogram_bins ** 3,
            "embedding": "learned item vectors"}[section.features]
    return f"{'PerMLP' if section.personalized else 'non-personalized MLP'} on {what}"


def load_images(dataset, posts, section):
    """``(patch_table [n, Q, d, d, 3], image_row [num_items])`` for the items of ``posts``: the
    data set's ``images.npz`` if it has one, else each item's image file."""
    c = resolved(section)
    items = np.unique(posts.item)
    side = square_side(c)
    if os.path.exists(os.path.join(dataset.path, "images.npz")):
        pixels = dataset.images()
        images = [pixels[i] for i in items]
    else:  # no images.npz: read the files items.tsv names
        paths = np.asarray(dataset.item_image)
        missing = [dataset.item_ids[i] for i in items if not paths[i]]
        if missing:
            raise DataError(dataset.path, f"{len(missing)} tagged item(s) have no image (first: "
                             f"{missing[0]!r}); import with only_with_poster=true or use features=embedding")
        images = [patches_lib.read_image(paths[i]) for i in items]
    table = patches_lib.patch_table(images, side, c.patch_size, c.num_patches)
    image_row = np.full(dataset.num_items, -1, np.int64)
    image_row[items] = np.arange(len(items))
    return table, image_row


def create(config, dataset):
    section = config.model.cnn_permlp
    posts = build_posts(dataset, section)
    logging.info("cnn_permlp: %d posts (%s), %d tags, %d users", len(posts.user),
                 ", ".join(f"{s} {int((posts.split == s).sum())}" for s in ("train", "holdout", "test")),
                 posts.num_tags, int(posts.trained_users().sum()))
    table = image_row = None
    r = resolved(section)
    if r.architecture == "permlp" and r.features != "embedding":
        table, image_row = load_images(dataset, posts, section)
    model = CNNPerMLP(section, posts, table, image_row, task=tasks.build(section, list_reduction="mean"))
    set_trained_rows(model.network, posts)
    return model
