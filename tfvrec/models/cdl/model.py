"""CDL: the comparative triple network, trained from pixels.

Lei, Liu, Li, Zha, *Comparative Deep Learning of Hybrid Representations for Image
Recommendation*, CVPR 2016.

- Image tower π(I) (§4, Fig. 2): an AlexNet-like network — five convolutions (ReLU; max-pooling
  after the first, second and fifth), then fully connected layers with dropout 0.5 and a
  linear output of width d. ONE tower, shared by the liked image I+ and the other image I−.
  Sizes come from the config: the paper's (256 px, 96-256-384-384-256 filters, 4096-wide
  FC, d = 1024) is experiment ``cdl_paper``; the default ``cdl`` is a CPU-sized tower;
  ``cdl_pretrained`` puts trainable FC layers on a frozen ImageNet EfficientNet-Lite0.
- User tower φ(U) (§4, Fig. 2's FC2_1..FC2_4): fully connected layers from the user vector U
  (§5, `tfvrec.models.cdl.user_vectors`) to the same d — four in the paper and by default
  (``user_units`` sets the hidden widths).
- Distance (§4): D(U, I) = Σ_k w_k (φ(U)_k − π(I)_k)², i.e. the element-wise
  squared difference, dropout, then one fully connected unit whose weights are kept
  non-negative (a Keras ``NonNeg`` constraint), so D is a weighted squared Euclidean distance
  (the paper's "weighted l2-norm").
- Comparison (eq. 2-3): o = D(U, I+) − D(U, I−) < 0 is wanted; P = σ(o) (eq. 3), label 0 (eq. 4).
- Loss (eq. 5): the cross-entropy with label 0, −log(1 − σ(o)) = softplus(o), which is
  `tfvrec.losses.PairwiseLogisticLoss` on the scores s = −D ([s+, s−] with labels [1, 0]);
  or the hinge max(0, m + o) (§3's alternative) = `tfvrec.losses.PairwiseHingeLoss`. Chosen by ``loss``.
- Training (§6.1.3): SGD, learning rate 1e-3, momentum 0.9, weight decay 5e-4, batches of 128
  triplets (the trainer's settings of the experiments); triplets from
  `tfvrec.models.cdl.sampling` (§5).

The TwoNets baseline of the paper (§6.1.2; ``loss: pointwise``) is the same two towers and
distance trained on single pairs: p(like | U, I) = σ(b − D(U, I)) with binary cross-entropy,
on the positive and the negative image of the same triplets; the offset b (`tfvrec.tasks.PointwiseTask`)
lets p exceed ½, as §6.1.2's sigmoid of the re-scaled distance does (with σ(−D) and D ≥ 0 it never could).

Scores for ranking are −D (higher is better). Since w ≥ 0, D is the squared L2 distance
between √w ⊙ φ(U) and √w ⊙ π(I), which is what the serving index holds (`serving.py`).
"""
import math

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec import tasks
from tfvrec.models.base import RecommenderModel
from tfvrec.models.cdl import images as images_lib
from tfvrec.models.cdl.sampling import TripletSampler, describe
from tfvrec.models.cdl.triplet_records import record_triplets
from tfvrec.models.cdl.user_vectors import build_user_vectors
from tfvrec.tasks import EmbeddedBatch, ScoredBatch

BACKBONE_FEATURES = 1280  # EfficientNet-Lite0's pooled features


# ----------------------------------------------------------------------------- towers (§4)

def image_tower(c, name="image_tower"):
    """π: float images [B, s, s, 3] in [0, 1] → [B, d] (or backbone features [B, 1280] → [B, d])."""
    layers = tf.keras.layers
    if c.backbone != "none":
        x = inputs = tf.keras.Input((BACKBONE_FEATURES,), name="backbone_features")
    else:
        x = inputs = tf.keras.Input((c.image_size, c.image_size, 3), name="image")
        for n, (filters, kernel) in enumerate(zip(c.conv_filters, c.conv_kernels), 1):
            x = layers.Conv2D(filters, kernel, strides=c.conv_stride if n == 1 else 1, padding="same",
                              activation=None if c.batch_norm else "relu", name=f"conv{n}")(x)
            if c.batch_norm:
                x = layers.ReLU(name=f"relu{n}")(layers.BatchNormalization(name=f"bn{n}")(x))
            if n in (1, 2, 5):  # AlexNet's three overlapping max-poolings
                x = layers.MaxPooling2D(3, 2, padding="same", name=f"pool{n}")(x)
        x = layers.Flatten(name="flatten")(x)
    for n, units in enumerate(c.fc_units, 1):
        x = layers.Dense(units, activation="relu", name=f"fc{n}")(x)
        if c.dropout:
            x = layers.Dropout(c.dropout, name=f"fc{n}_dropout")(x)
    x = layers.Dense(c.embedding_dim, name=f"fc{len(c.fc_units) + 1}")(x)
    return tf.keras.Model(inputs, x, name=name)


def user_tower(num_clusters, c, name="user_tower"):
    """φ: user vectors [B, C] → [B, d] (§4, Fig. 2's FC2_1..FC2_4): a ReLU FC layer per entry of
    ``c.user_units``, then a linear FC layer of width d (the paper: four layers, ``cdl_paper``)."""
    x = inputs = tf.keras.Input((num_clusters,), name="user_vector")
    for n, units in enumerate(c.user_units, 1):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"user_fc{n}")(x)
    x = tf.keras.layers.Dense(c.embedding_dim, name=f"user_fc{len(c.user_units) + 1}")(x)
    return tf.keras.Model(inputs, x, name=name)


# ----------------------------------------------------------------------------- distance (§4)

def distance_net(dim, dropout, name="distance"):
    """D(φ, π) = Σ_k w_k (φ_k − π_k)², w ≥ 0: [B, d], [B, d] → [B]."""
    phi = tf.keras.Input((dim,), name="phi")
    pi = tf.keras.Input((dim,), name="pi")
    diff = tf.keras.layers.Subtract(name="diff")([phi, pi])
    squared = tf.keras.layers.Multiply(name="square")([diff, diff])
    if dropout:
        squared = tf.keras.layers.Dropout(dropout, name="distance_dropout")(squared)
    d = tf.keras.layers.Dense(1, use_bias=False, kernel_initializer="ones",
                              kernel_constraint=tf.keras.constraints.NonNeg(), name="weights")(squared)
    d = tf.keras.layers.Reshape((), name="D")(d)
    return tf.keras.Model([phi, pi], d, name=name)


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class SplitInTwo(tf.keras.layers.Layer):
    """[2B, d] → ([B, d], [B, d]): the positive and negative halves of one tower pass."""

    def call(self, x):
        return tuple(tf.split(x, 2, axis=0))


def triple_network(image_model, user_model, distance_model, c, num_clusters):
    """The triple network (Fig. 2): (U, I+, I−) of eq. 1 → (D(U, I+), D(U, I−)); o = D+ − D− (eq. 3)."""
    shape = (BACKBONE_FEATURES,) if c.backbone != "none" else (c.image_size, c.image_size, 3)
    user = tf.keras.Input((num_clusters,), name="user_vector")
    positive = tf.keras.Input(shape, name="positive_image")
    negative = tf.keras.Input(shape, name="negative_image")
    phi = user_model(user)
    # The same π for both images, in one pass (so batch statistics, if any, are shared).
    both = image_model(tf.keras.layers.Concatenate(axis=0, name="both_images")([positive, negative]))
    pi_pos, pi_neg = SplitInTwo(name="split_images")(both)
    d_pos = distance_model([phi, pi_pos])
    d_neg = distance_model([phi, pi_neg])
    return tf.keras.Model([user, positive, negative], [d_pos, d_neg], name="triple_network")


# ----------------------------------------------------------------------------- the model

class CDL(RecommenderModel):
    """CDL as a tfrs model: π, φ and D in a triple network; score −D; loss of eq. 5 (or hinge)."""

    def __init__(self, c, user_vectors, item_inputs, usable=None, task=None, description=""):
        """``user_vectors`` [num_users, C] (§5); ``item_inputs``: the catalogue's uint8 pixels
        [N, s, s, 3], or backbone features [N, 1280] (``c.backbone``); ``usable`` [N] bool."""
        super().__init__()
        self.c = c
        self.num_users, self.num_clusters = user_vectors.shape
        self.num_items = len(item_inputs)
        self.user_vectors = tf.constant(np.asarray(user_vectors, np.float32))
        self.item_inputs = item_inputs  # numpy: gathered per batch, never a variable
        self.usable = np.ones(self.num_items, bool) if usable is None else np.asarray(usable, bool)
        self.description = description
        self.image_model = image_tower(c)
        self.user_model = user_tower(self.num_clusters, c)
        self.distance_model = distance_net(c.embedding_dim, c.distance_dropout)
        self.triple = triple_network(self.image_model, self.user_model, self.distance_model, c, self.num_clusters)
        self.task = task if task is not None else tasks.PairwiseRankingTask()
        self._cache = (None, None)

    # -- inputs --------------------------------------------------------------------------
    def prepare(self, inputs):
        """uint8 pixels → float [0, 1] (backbone features pass through)."""
        inputs = tf.convert_to_tensor(inputs)
        return tf.cast(inputs, tf.float32) / 255.0 if inputs.dtype == tf.uint8 else tf.cast(inputs, tf.float32)

    def distance_weights(self):
        """w [d] (non-negative)."""
        return tf.reshape(self.distance_model.get_layer("weights").kernel, [-1])

    def embed_images(self, inputs, batch=256):
        """π of item inputs (numpy, inference mode) → [n, d] float32."""
        out = [self.image_model(self.prepare(inputs[lo:lo + batch]), training=False).numpy()
               for lo in range(0, len(inputs), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.c.embedding_dim), np.float32)

    def catalogue_embeddings(self, items=None):
        """π(I) of the catalogue [N, d] (recomputed only when the weights changed), or, for a few
        ``items`` while the cache is stale, of those alone (rows of the returned [N, d] elsewhere 0)."""
        fingerprint = tuple(float(tf.reduce_sum(v)) for v in self.image_model.variables)
        if self._cache[0] == fingerprint:
            return self._cache[1]
        if items is not None:
            unique = np.unique(items)
            if len(unique) < self.num_items // 4:
                out = np.zeros((self.num_items, self.c.embedding_dim), np.float32)
                out[unique] = self.embed_images(self.item_inputs[unique])
                return out
        self._cache = (fingerprint, self.embed_images(self.item_inputs))
        return self._cache[1]

    # -- the engine's contract ---------------------------------------------------------------
    def call(self, inputs):
        return self.score_candidates(inputs["user"], inputs["items"])

    def distances(self, phi, pi):
        """D for query vectors [B, d] and item vectors [B, C, d] → [B, C] (inference: no dropout)."""
        w = self.distance_weights()
        return tf.einsum("bcd,d->bc", tf.square(phi[:, None, :] - pi), w)

    def score_candidates(self, users, items):
        items = tf.cast(items, tf.int64)  # (eager: π comes from the catalogue cache)
        pi = tf.gather(tf.constant(self.catalogue_embeddings(np.asarray(items))), items)
        phi = self.user_model(tf.gather(self.user_vectors, tf.cast(users, tf.int64)))
        scores = -self.distances(phi, pi)
        return tf.where(tf.gather(tf.constant(self.usable), items), scores, -np.inf)

    def score_all_items(self, users):
        """−D against the whole catalogue [B, N], expanded: Σ w φ² − 2 (w ⊙ φ)·π + Σ w π²."""
        w = self.distance_weights()
        pi = tf.constant(self.catalogue_embeddings())
        phi = self.user_model(tf.gather(self.user_vectors, tf.cast(users, tf.int64)))
        d = (tf.reduce_sum(w * phi * phi, -1, keepdims=True) - 2.0 * tf.matmul(phi * w, pi, transpose_b=True)
             + tf.reduce_sum(w * pi * pi, -1)[None])
        return tf.where(tf.constant(self.usable)[None], -d, -np.inf)

    def training_scores(self, inputs, training=False):
        """Scores s = −D of the triplets' positive and negative images: eq. 3-5 with a pairwise loss
        (s+ − s− = −o, so the logistic loss is softplus(o), the hinge max(0, m + o)); TwoNets' pairs
        with the pointwise task."""
        user = tf.gather(self.user_vectors, inputs["user"])
        d_pos, d_neg = self.triple([user, inputs["positive_image"], inputs["negative_image"]], training=training)
        return ScoredBatch(tf.stack([-d_pos, -d_neg], axis=1))

    def training_vectors(self, inputs, training=False):
        """tfrs' retrieval softmax over −D. −D(U, I) = −Σ w φ² + 2 Σ w φ π − Σ w π², and the first term is
        the same for every candidate of a user, so the dot product of q = [2 w ⊙ φ, 1] with
        c = [π, −Σ w π²] gives each user's logits up to a constant (the softmax is exact). No √w: its
        gradient is infinite where the non-negativity constraint has set a weight to 0."""
        user = tf.gather(self.user_vectors, inputs["user"])
        w = self.distance_weights()
        phi = self.user_model(user, training=training)
        both = self.image_model(tf.concat([inputs["positive_image"], inputs["negative_image"]], axis=0),
                                training=training)
        pi_pos, pi_neg = tf.split(both, 2, axis=0)

        def candidate(pi):
            return tf.concat([pi, -tf.reduce_sum(w * pi * pi, axis=-1, keepdims=True)], axis=-1)
        query = tf.concat([2.0 * w * phi, tf.ones_like(phi[:, :1])], axis=-1)
        return EmbeddedBatch(query, candidate(pi_pos), inputs["positive"], candidate(pi_neg)[:, None],
                             inputs["negative"][:, None])

    @property
    def evaluation_note(self):
        return self.description


# ----------------------------------------------------------------------------- inputs

def triplet_dataset(model, sampler, batch_size, steps, seed, triplets=None):
    """Batches of triplets with their images gathered (and augmented): an infinite ``tf.data.Dataset``
    (``triplets``: the same tuples read from records, `tfvrec.models.cdl.triplet_records`)."""
    inputs, augment = model.item_inputs, model.c.augment and model.c.backbone == "none"
    shape = inputs.shape[1:]

    def generate():
        for users, positives, negatives, batch_seed in sampler.batches(seed, batch_size, steps):
            yield users, positives, negatives, inputs[positives], inputs[negatives], batch_seed

    spec = (tf.TensorSpec([batch_size], tf.int64), tf.TensorSpec([batch_size], tf.int64),
            tf.TensorSpec([batch_size], tf.int64), tf.TensorSpec([batch_size, *shape], tf.as_dtype(inputs.dtype)),
            tf.TensorSpec([batch_size, *shape], tf.as_dtype(inputs.dtype)), tf.TensorSpec([2], tf.int64))

    def to_batch(users, positives, negatives, pos_images, neg_images, batch_seed):
        pos_images, neg_images = model.prepare(pos_images), model.prepare(neg_images)
        if augment:
            pos_images = images_lib.augment(pos_images, batch_seed)
            neg_images = images_lib.augment(neg_images, batch_seed + 7)
        return {"user": users, "positive": positives, "negative": negatives, "positive_image": pos_images,
                "negative_image": neg_images}
    if triplets is None:
        triplets = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return triplets.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def training_inputs(config, dataset, model, seed):
    """CDL's training stream (`tfvrec.inputs`): §5's triplets with their images, sampled in process or read
    from the records `tfvrec triplets` wrote (the same batches)."""
    c, trainer = config.model.cdl, config.trainer
    sampler = TripletSampler(dataset, c, model.usable)
    logging.info("CDL triplets: %d per epoch; negatives: %s", sampler.triplets_per_epoch,
                 describe(sampler.pools, dataset.num_users))
    steps = trainer.steps_per_epoch or max(1, math.ceil(sampler.triplets_per_epoch / trainer.batch_size))
    triplets = None
    if c.triplets_path:  # triplets written by `tfvrec triplets`: the same batches, read from files
        triplets = record_triplets(model, dataset, trainer, seed, steps)
    return triplet_dataset(model, sampler, trainer.batch_size, steps, seed, triplets=triplets), steps


def item_inputs(dataset, config):
    """``(inputs, usable, description)``: the catalogue as the image tower takes it."""
    c = config.model.cdl
    if c.backbone != "none":
        features, usable = images_lib.backbone_features(dataset, config.data.cache_dir, skip_bad=c.skip_bad_images)
        return features, usable, "π = FC layers on frozen EfficientNet-Lite0 features (ImageNet)"
    pixels, usable, counts = images_lib.load_pixels(dataset, c.image_size, config.data.cache_dir,
                                                    skip_bad=c.skip_bad_images)
    skipped = f"; {counts['bad_images']} bad images skipped" if counts["bad_images"] else ""
    return pixels, usable, f"π from {c.image_size}px pixels{skipped}"


def create(config, dataset):
    c = config.model.cdl
    inputs, usable, description = item_inputs(dataset, config)
    vectors = build_user_vectors(dataset, c, seed=config.runtime.seed)
    model = CDL(c, vectors.user_vectors, inputs, usable=usable, description=description, task=tasks.build(c, dataset))
    model.tag_clusters = vectors
    logging.info("CDL (%s loss): %s", c.loss, description)
    return model


def summaries(model, dataset, users):
    """TensorBoard histograms of what CDL learned (`tfvrec.inspect.epoch`): the distance weights w
    (non-negative, eq. 2) and the norms of the users' φ(U)."""
    phi = model.user_model(tf.gather(model.user_vectors, tf.constant(np.asarray(users, np.int64))))
    return {"distance_weights": model.distance_weights().numpy(), "user_tower_norms": tf.norm(phi, axis=1).numpy()}
