"""BPR-MF: Bayesian Personalized Ranking with matrix factorisation.

Rendle, Freudenthaler, Gantner, Schmidt-Thieme, *BPR: Bayesian Personalized
Ranking from Implicit Feedback*, UAI 2009.

- Score (MF predictor, §4.3.1): x̂_ui = <p_u, q_i> + b_i.
- Objective (BPR-Opt, §4.1): Σ_{(u,i,j)} −ln σ(x̂_ui − x̂_uj) + λ‖Θ‖², over triples
  with i liked by u and j not; here each positive draws ``negatives_per_positive``
  uniform negatives and λ applies to the embeddings a batch touches.
- Learning (LearnBPR, §4.3): (u, i) drawn uniformly *with replacement* (bootstrap),
  which is what the input pipeline does. LearnBPR's plain SGD is ``trainer.optimizer: sgd``
  (row-sparse, `tfvrec.training.sparse_sgd`); the loss is a batch mean, so the per-pair
  step α of §4.3 is ``learning_rate / batch_size``. ``configs/bpr_flickr_fs.yaml`` trains so.

It is HASC's baseline and the source of HASC's initial P and W (Wu et al., §4.1).
The item bias is folded into the item vector ([q_i, b_i]) and a constant 1 appended
to the user vector ([p_u, 1]), so the towers' dot product is the exact score and a
retrieval index over item vectors needs no separate bias.
"""
import math

import tensorflow as tf

from tfvrec.models.base import RecommenderModel, item_frequency, pairwise_task, positive_table, sample_negatives
from tfvrec.tasks import PairwiseRankingTask


def user_tower(num_users, dim, use_bias, init_stddev, name="user_tower"):
    """Functional tower: user index → [p_u(, 1)]."""
    user = tf.keras.Input(shape=(), dtype=tf.int64, name="user")
    p = tf.keras.layers.Embedding(num_users, dim, name="user_embedding",
                                  embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=init_stddev))(user)
    if use_bias:
        p = tf.keras.layers.Lambda(lambda x: tf.concat([x, tf.ones_like(x[:, :1])], axis=-1), name="append_one")(p)
    return tf.keras.Model(user, p, name=name)


def item_tower(num_items, dim, use_bias, init_stddev, name="item_tower"):
    """Functional tower: item index → [q_i(, b_i)]."""
    item = tf.keras.Input(shape=(), dtype=tf.int64, name="item")
    q = tf.keras.layers.Embedding(num_items, dim, name="item_embedding",
                                  embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=init_stddev))(item)
    if use_bias:
        b = tf.keras.layers.Embedding(num_items, 1, name="item_bias", embeddings_initializer="zeros")(item)
        q = tf.keras.layers.Concatenate(name="with_bias")([q, b])
    return tf.keras.Model(item, q, name=name)


class BPRMF(RecommenderModel):
    """BPR-MF as a tfrs model: two embedding towers, dot-product score, pairwise task."""

    def __init__(self, num_users, num_items, embedding_dim=64, l2=1e-5, use_item_bias=True, init_stddev=0.01,
                 task=None, retrieval=None, item_frequency=None):
        """``retrieval``: the `tfvrec.objectives.RetrievalConfig` when ``task`` is the retrieval
        objective (None: pairwise); ``item_frequency`` [num_items] for its log-Q correction."""
        super().__init__()
        self.num_users, self.num_items, self.l2 = num_users, num_items, l2
        self.retrieval = retrieval
        self.item_frequency = None if item_frequency is None else tf.constant(item_frequency, tf.float32)
        self.user_model = user_tower(num_users, embedding_dim, use_item_bias, init_stddev)
        self.item_model = item_tower(num_items, embedding_dim, use_item_bias, init_stddev)
        self.task = task if task is not None else PairwiseRankingTask()

    def call(self, inputs):
        """Scores of ``inputs["items"]`` ``[B, C]`` for ``inputs["user"]`` ``[B]``."""
        return self.score_candidates(inputs["user"], inputs["items"])

    def score_candidates(self, users, items):
        u = self.user_model(users)
        v = tf.reshape(self.item_model(tf.reshape(items, [-1])), tf.concat([tf.shape(items), [-1]], 0))
        return tf.einsum("bd,bcd->bc", u, v)

    def score_all_items(self, users):
        return tf.matmul(self.user_model(users), self.item_model(tf.range(self.num_items, dtype=tf.int64)),
                         transpose_b=True)

    def compute_loss(self, inputs, training=False):
        if self.retrieval is not None:
            return self._retrieval_loss(inputs)
        items = tf.concat([inputs["positive"][:, None], inputs["negatives"]], axis=1)
        u = self.user_model(inputs["user"])
        v = tf.reshape(self.item_model(tf.reshape(items, [-1])), tf.concat([tf.shape(items), [-1]], 0))
        scores = tf.einsum("bd,bcd->bc", u, v)
        # λ‖Θ‖² on the parameters of this triple.
        norms = tf.reduce_sum(tf.square(tf.cast(u, tf.float32)), -1) + \
            tf.reduce_sum(tf.square(tf.cast(v, tf.float32)), [-2, -1])
        return self.ranking_loss(scores, norms, self.l2)

    def _retrieval_loss(self, inputs):
        """The retrieval objective: each user against every positive of the global batch (and
        the sampled negatives), log-Q corrected by item frequency; λ as in the pairwise loss."""
        u = self.user_model(inputs["user"])
        positive = self.item_model(inputs["positive"])
        negatives = inputs["negatives"]
        v = tf.reshape(self.item_model(tf.reshape(negatives, [-1])), tf.concat([tf.shape(negatives), [-1]], 0))
        norms = tf.reduce_sum(tf.square(tf.cast(u, tf.float32)), -1) + tf.reduce_sum(
            tf.square(tf.cast(positive, tf.float32)), -1) + tf.reduce_sum(tf.square(tf.cast(v, tf.float32)), [-2, -1])
        return self.retrieval_loss(u, positive, inputs["positive"], v, negatives, norms, self.l2,
                                   options=self.retrieval, frequency=self.item_frequency)

    def make_train_dataset(self, dataset, trainer, seed):
        return bootstrap_pairs(dataset, trainer, seed)


def bootstrap_pairs(dataset, trainer, seed):
    """LearnBPR's input: (user, positive) drawn uniformly with replacement + sampled negatives.

    Returns ``(tf.data.Dataset, steps_per_epoch)``; the data set is infinite and
    globally batched, batch t a pure function of ``(seed, t)`` (stateless ops), so a run
    is reproducible and a resumed one, skipping the batches it trained on, sees the same stream.
    """
    train = dataset.split("train")
    users = tf.constant(train["user"].values, tf.int64)
    items = tf.constant(train["item"].values, tf.int64)
    positives = positive_table(train["user"].values, train["item"].values, dataset.num_items)
    n, num_items, k = len(train), dataset.num_items, trainer.negatives_per_positive

    b = trainer.batch_size

    def make_batch(step):
        # One stateless draw per batch, keyed on (seed, step): batching a stream of scalar
        # draws instead costs ~0.5 µs per pair in tf.data, a quarter of a large-batch step.
        rows = tf.random.stateless_uniform([b], seed=tf.stack([2 * seed, step]), minval=0, maxval=n, dtype=tf.int64)
        u, i = tf.gather(users, rows), tf.gather(items, rows)
        negatives = sample_negatives(u, num_items, k, positives, seed=tf.stack([2 * seed + 1, step]))
        return {"user": u, "positive": i, "negatives": negatives}

    ds = tf.data.Dataset.counter().map(make_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    steps = trainer.steps_per_epoch or max(1, math.ceil(n / trainer.batch_size))
    return ds, steps


def create(config, dataset):
    c = config.model.bpr
    retrieval = c.loss == "retrieval"
    return BPRMF(dataset.num_users, dataset.num_items, embedding_dim=c.embedding_dim, l2=c.l2,
                 use_item_bias=c.use_item_bias, init_stddev=c.init_stddev, task=pairwise_task(c),
                 retrieval=c.retrieval if retrieval else None, item_frequency=item_frequency(dataset) if retrieval
                 else None)
