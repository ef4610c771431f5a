"""CuratorNet: visually-aware recommendation from a purchase (or like) history.

Cartagena, Messina, Parra, Ruiz, ... *CuratorNet: Visually-aware Recommendation of
Art Images*.

- Items are frozen content vectors f_i (paper: ResNet50 embeddings). The item tower
  Φ (§3.4): Dense(200, selu) → Dense(200, selu), *shared* by candidate items and the
  items of a profile (siamese / triplet style).
- Profile tower (§3.4): Φ over every item of the profile P_u, then mean-pooling ‖
  max-pooling (400) → Dense(300) → Dense(200) → Dense(200), selu = Φ(P_u). A profile
  is ragged (any length): each pooling sees exactly its items, no padding.
- Score (eq. 2): x_ui = Φ(P_u)ᵀ Φ(f_i); α and β_u of eq. 1 cancel under BPR.
- Loss (eq. 6, c = 1 for every triplet): −ln σ(x_ui − x_uj) = softplus(−(x_ui − x_uj)),
  i.e. `tfvrec.losses.PairwiseLogisticLoss` through `PairwiseRankingTask`, averaged
  over the batch, plus λ‖Θ‖² over every weight and bias (Keras L2 regularizers).
  Adam (§3.3).
- Training triplets (§3.5): `tfvrec.models.curatornet.sampling` (visual clusters,
  guidelines D1-D6, the random-negative ablation), streamed into ``tf.data``.

There are no per-user or per-item parameters: a user is their profile (here the
most recent training purchases, at most ``max_profile_items``), an item is its
content, so new users and new items are scored without retraining
(`tfvrec.inference`, as served). Paper baselines (VisRank, VBPR, Oracle;
Random is built in) are `tfvrec.models.curatornet.baselines`.
"""
import math

import numpy as np
import tensorflow as tf
from absl import logging

from tfvrec import tasks
from tfvrec.data import content as content_lib
from tfvrec.models.base import RecommenderModel
from tfvrec.models.curatornet.config import check
from tfvrec.models.curatornet.clusters import visual_clusters
from tfvrec.models.curatornet.history import PurchaseHistory
from tfvrec.models.curatornet.sampling import TripletSampler, describe
from tfvrec.models.curatornet.triplet_records import record_dataset
from tfvrec.tasks import EmbeddedBatch, ScoredBatch


# ----------------------------------------------------------------------------- layers and towers

@tf.keras.utils.register_keras_serializable(package="tfvrec")
class MeanMaxPooling(tf.keras.layers.Layer):
    """``[mean ‖ max]`` over each profile's item vectors (§3.4): ragged ``[B, (L), D]`` → ``[B, 2D]``.

    Profiles are ragged, so there is no padding to mask: each pooling sees exactly the
    profile's items (segment sums and maxima over the flat values). An empty profile
    pools to zeros.
    """

    def call(self, vectors):
        rows = vectors.value_rowids()  # sorted, so the (faster) sorted segment ops apply
        count = tf.cast(vectors.row_lengths(), vectors.dtype)[:, tf.newaxis]
        # Sorted segment ops stop at the last non-empty row and give 0 for empty ones.
        total = tf.math.segment_sum(vectors.values, rows)
        maximum = tf.math.segment_max(vectors.values, rows)
        missing = [[0, tf.cast(vectors.nrows(), tf.int32) - tf.shape(total)[0]], [0, 0]]
        total, maximum = tf.pad(total, missing), tf.pad(maximum, missing)
        return tf.concat([total / tf.maximum(count, 1.0), maximum], axis=-1)


def _dense(units, l2, name):
    regularizer = tf.keras.regularizers.L2(l2) if l2 else None
    # SELU layers are self-normalising with LeCun-normal initialisation (Klambauer et al. 2017).
    return tf.keras.layers.Dense(units, activation="selu", kernel_initializer="lecun_normal",
                                 kernel_regularizer=regularizer, bias_regularizer=regularizer, name=name)


def item_tower(content_dim, units, l2, normalization=None, name="item_tower"):
    """Φ(f_i): content ``[n, d]`` → item vectors ``[n, units]``."""
    content = tf.keras.Input(shape=(content_dim,), dtype=tf.float32, name="content")
    x = normalization(content) if normalization is not None else content
    x = _dense(units, l2, "item_dense_1")(x)
    x = _dense(units, l2, "item_dense_2")(x)
    return tf.keras.Model(content, x, name=name)


def profile_tower(item_units, profile_units, l2, name="profile_tower"):
    """Φ(P_u): the ragged item vectors ``[B, (L), units]`` of B profiles → profile vectors ``[B, units]``."""
    vectors = tf.keras.Input(shape=(None, item_units), dtype=tf.float32, ragged=True, name="item_vectors")
    x = MeanMaxPooling(name="mean_max_pooling")(vectors)
    x = _dense(profile_units, l2, "profile_dense_1")(x)
    x = _dense(item_units, l2, "profile_dense_2")(x)
    x = _dense(item_units, l2, "profile_dense_3")(x)
    return tf.keras.Model(vectors, x, name=name)


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class PartwiseUnitNormalization(tf.keras.layers.Layer):
    """Each content part (consecutive columns of the given ``sizes``) scaled to unit L2 length, then
    concatenated again: ``features+tags`` → ``[f/‖f‖ ‖ t/‖t‖]`` (a zero part stays zero)."""

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(n) for n in sizes]

    def call(self, content):
        parts = tf.split(content, self.sizes, axis=-1)
        return tf.concat([tf.math.l2_normalize(part, axis=-1) for part in parts], axis=-1)

    def get_config(self):
        return dict(super().get_config(), sizes=self.sizes)


def feature_normalization(kind, content, part_sizes=None):
    """The layer that prepares feature vectors for Φ (None for "none"). ``part_sizes``: the widths of the
    content's parts (``features+tags``); "l2" scales each part to unit length."""
    if kind == "standardize":
        # Statistics of the training catalogue, fixed: new items are scaled the same way.
        return tf.keras.layers.Normalization(mean=content.mean(axis=0), variance=content.var(axis=0) + 1e-6,
                                             name="standardize")
    if kind == "l2":
        if part_sizes is not None and len(part_sizes) > 1:
            return PartwiseUnitNormalization(part_sizes, name="unit_length_parts")
        return tf.keras.layers.UnitNormalization(name="unit_length")
    return None


# ----------------------------------------------------------------------------- the model

class CuratorNet(RecommenderModel):
    """CuratorNet as a tfrs model: shared item tower, profile tower, dot-product score, pairwise task.

    ``item_content``: float ``[num_items, d]``, the frozen content of the catalogue.
    ``profile_splits`` / ``profile_items``: every user's profile (CSR), used when the
    engine scores users by index.
    """

    def __init__(self, item_content, profile_splits, profile_items, item_units=200, profile_units=300, l2=1e-4,
                 normalization="none", task=None, description="", part_sizes=None):
        super().__init__()
        item_content = np.asarray(item_content, dtype=np.float32)
        self.num_items, self.content_dim = item_content.shape
        self.num_users = len(profile_splits) - 1
        self.l2 = l2
        self.description = description
        # Data, not parameters: plain tensors, so checkpoints hold only the towers.
        self.item_content = tf.constant(item_content)
        self._profile_items = tf.constant(np.asarray(profile_items, np.int64))
        self._profile_splits = tf.constant(np.asarray(profile_splits, np.int64))
        self.item_model = item_tower(self.content_dim, item_units, l2,
                                     feature_normalization(normalization, item_content, part_sizes))
        self.profile_model = profile_tower(item_units, profile_units, l2)
        self.task = task if task is not None else tasks.PairwiseRankingTask()

    # -- towers on ids ------------------------------------------------------------------
    def encode_items(self, ids):
        """Φ(f) of a flat vector of item ids → ``[n, D]``.

        Each distinct item passes the tower once, however often it occurs (profiles
        of one batch share many items).
        """
        unique, position = tf.unique(tf.reshape(ids, [-1]))
        return tf.gather(self.item_model(tf.gather(self.item_content, unique)), position)

    def encode_profiles(self, profiles, item_vectors=None):
        """Φ(P) of ragged profiles of item ids ``[B, (L)]`` (from ``item_vectors`` when given)."""
        if item_vectors is None:
            values = self.encode_items(profiles.values)
        else:
            values = tf.gather(item_vectors, profiles.values)
        return self.profile_model(profiles.with_values(values))

    def user_profiles(self, users):
        """Ragged profile item ids ``[B, (L)]`` of users by index."""
        ragged = tf.RaggedTensor.from_row_splits(self._profile_items, self._profile_splits, validate=False)
        return tf.gather(ragged, users)

    def item_vectors(self):
        """Φ(f_i) of the whole catalogue ``[num_items, D]``."""
        return self.item_model(self.item_content)

    def user_vectors(self, users, item_vectors=None):
        return self.encode_profiles(self.user_profiles(tf.cast(users, tf.int64)), item_vectors)

    # -- the engine's contract ----------------------------------------------------------
    def call(self, inputs):
        return self.score_candidates(inputs["user"], inputs["items"])

    def score_candidates(self, users, items):
        items = tf.cast(items, tf.int64)
        vectors = tf.reshape(self.encode_items(items), tf.concat([tf.shape(items), [-1]], 0))
        return tf.einsum("bd,bcd->bc", self.user_vectors(users), vectors)

    def score_all_items(self, users):
        vectors = self.item_vectors()
        return tf.matmul(self.user_vectors(users, vectors), vectors, transpose_b=True)

    def _triplet_vectors(self, inputs):
        """Φ(P_u), Φ(f_i), Φ(f_j) of a batch of triplets (profile [B, L] item ids, left-aligned, -1
        after each profile's end; positive [B]; negative [B])."""
        profile, positive, negative = inputs["profile"], inputs["positive"], inputs["negative"]
        lengths = tf.reduce_sum(tf.cast(profile >= 0, tf.int64), axis=1)
        profiles = tf.RaggedTensor.from_tensor(profile, lengths=lengths)
        # One tower pass per distinct item of the batch (profiles, positives, negatives);
        # each part then gathers its rows (whose gradients are sparse row updates).
        unique, position = tf.unique(tf.concat([profiles.values, positive, negative], axis=0))
        vectors = self.item_model(tf.gather(self.item_content, unique))
        in_profiles, of_positives, of_negatives = tf.split(
            position, tf.stack([tf.size(profiles.values), tf.size(positive), tf.size(negative)]))
        user = self.profile_model(profiles.with_values(tf.gather(vectors, in_profiles)))
        return user, tf.gather(vectors, of_positives), tf.gather(vectors, of_negatives)

    def training_scores(self, inputs, training=False):
        """Eq. 6's pairs [x_ui, x_uj]; λ‖Θ‖² comes from the layers' regularizers."""
        user, positive, negative = self._triplet_vectors(inputs)
        x_ui = tf.reduce_sum(user * positive, axis=-1)
        x_uj = tf.reduce_sum(user * negative, axis=-1)
        return ScoredBatch(tf.stack([x_ui, x_uj], axis=1))

    def training_vectors(self, inputs, training=False):
        """tfrs' softmax over the batch's positives (and the triplets' j)."""
        user, positive, negative = self._triplet_vectors(inputs)
        return EmbeddedBatch(user, positive, inputs["positive"], negative[:, None], inputs["negative"][:, None])

    @property
    def evaluation_note(self):
        """Said in the printed table's title: what the items' content is."""
        return self.description


# ----------------------------------------------------------------------------- inputs from a data set

def item_content(dataset, config):
    """``(content float32 [num_items, d], description)`` for ``model.curatornet.item_content``."""
    check(config)
    return content_lib.item_content(dataset, config.model.curatornet.item_content, config.data.features,
                                    key="model.curatornet.item_content")


_CLUSTER_CACHE = {}


def item_clusters(dataset, config):
    """Visual clusters of the data set's image features (``data.features``), or None without any."""
    c = config.model.curatornet
    if not config.data.features:
        return None
    key = (dataset.path, config.data.features, c.cluster_dims, c.num_clusters, c.cluster_restarts,
           c.silhouette_sample, config.runtime.seed)
    if key not in _CLUSTER_CACHE:
        labels, _ = visual_clusters(dataset.features(config.data.features), dims=c.cluster_dims,
                                    num_clusters=c.num_clusters, restarts=c.cluster_restarts,
                                    seed=config.runtime.seed, silhouette_sample=c.silhouette_sample)
        _CLUSTER_CACHE.clear()
        _CLUSTER_CACHE[key] = labels
    return _CLUSTER_CACHE[key]


def purchase_history(dataset):
    return PurchaseHistory.from_frame(dataset.split("train"), dataset.num_users, dataset.num_items)


def build_sampler(dataset, config, sampling=None, guidelines=None):
    """The triplet sampler of ``model.curatornet`` (``sampling``/``guidelines`` override it)."""
    c = config.model.curatornet
    return TripletSampler(purchase_history(dataset), dataset.item_artist, item_clusters(dataset, config),
                          guidelines=guidelines or c.guidelines, sampling=sampling or c.sampling,
                          max_profile_items=c.max_profile_items)


def guideline_sampler(config, dataset, guidelines):
    """The guidelines sampler (§3.5) lent to other models (``ModelSpec.samplers``: VBPR's D3 + D4, the
    paper's VBPR setting), with ``model.curatornet``'s clusters and profiles."""
    return build_sampler(dataset, config, sampling="guidelines", guidelines=list(guidelines))


def triplet_dataset(sampler, c, batch_size, seed):
    """The sampler's infinite stream of globally batched triplets as a ``tf.data.Dataset``."""
    spec = {"profile": tf.TensorSpec([batch_size, None], tf.int64),
            "positive": tf.TensorSpec([batch_size], tf.int64),
            "negative": tf.TensorSpec([batch_size], tf.int64),
            "user": tf.TensorSpec([batch_size], tf.int64)}
    return tf.data.Dataset.from_generator(
        lambda: sampler.batches(seed, c.num_triplets, batch_size, chunk=c.sampler_chunk),
        output_signature=spec).prefetch(4)


def training_inputs(config, dataset, model, seed):
    """CuratorNet's training stream (`tfvrec.inputs`): D_S of §3.5 sampled in process, or read from the
    records `tfvrec triplets` wrote (the same batches)."""
    c, trainer = config.model.curatornet, config.trainer
    steps = trainer.steps_per_epoch or max(1, math.ceil(c.num_triplets / trainer.batch_size))
    if c.triplets_path:  # D_S written by `tfvrec triplets`: the same batches, no sampler built here
        logging.info("CuratorNet triplets: streamed from the records in %s", c.triplets_path)
        return record_dataset(config, dataset, trainer.batch_size, seed), steps
    sampler = build_sampler(dataset, config)
    logging.info("CuratorNet triplets: %s", describe(sampler))
    return triplet_dataset(sampler, c, trainer.batch_size, seed), steps


def create(config, dataset):
    c = config.model.curatornet
    content, description = item_content(dataset, config)
    splits, items = purchase_history(dataset).recent_profiles(c.max_profile_items)
    parts = content_lib.content_parts(c.item_content)
    normalization = c.feature_normalization if "features" in parts else "none"
    model = CuratorNet(content, splits, items, item_units=c.item_units, profile_units=c.profile_units, l2=c.l2,
                       normalization=normalization, description=description, task=tasks.build(c, dataset),
                       part_sizes=content_lib.part_sizes(dataset, c.item_content, config.data.features))
    logging.info("CuratorNet: %s; profiles = the most recent %s training items", description,
                 c.max_profile_items or "all")
    return model
