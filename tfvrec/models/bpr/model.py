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
import tensorflow as tf

from tfvrec import tasks
from tfvrec.models.base import RecommenderModel
from tfvrec.tasks import EmbeddedBatch, ScoredBatch


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
                 task=None):
        """``task``: the objective (`tfvrec.tasks.build`; default BPR-Opt's pairwise logistic loss)."""
        super().__init__()
        self.num_users, self.num_items, self.l2 = num_users, num_items, l2
        self.user_model = user_tower(num_users, embedding_dim, use_item_bias, init_stddev)
        self.item_model = item_tower(num_items, embedding_dim, use_item_bias, init_stddev)
        self.task = task if task is not None else tasks.PairwiseRankingTask()

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

    def training_scores(self, inputs, training=False):
        """BPR-Opt's lists [x_ui, x_uj…] of a batch of bootstrap pairs, with λ‖Θ‖² of each triple."""
        items = tf.concat([inputs["positive"][:, None], inputs["negatives"]], axis=1)
        u = self.user_model(inputs["user"])
        v = tf.reshape(self.item_model(tf.reshape(items, [-1])), tf.concat([tf.shape(items), [-1]], 0))
        scores = tf.einsum("bd,bcd->bc", u, v)
        norms = tf.reduce_sum(tf.square(tf.cast(u, tf.float32)), -1) + \
            tf.reduce_sum(tf.square(tf.cast(v, tf.float32)), [-2, -1])
        return ScoredBatch(scores, squared_norms=norms, l2=self.l2)

    def training_vectors(self, inputs, training=False):
        """The retrieval objective: each user against every positive of the global batch (and the
        sampled negatives); λ as in the pairwise loss."""
        u = self.user_model(inputs["user"])
        positive = self.item_model(inputs["positive"])
        negatives = inputs["negatives"]
        v = tf.reshape(self.item_model(tf.reshape(negatives, [-1])), tf.concat([tf.shape(negatives), [-1]], 0))
        norms = tf.reduce_sum(tf.square(tf.cast(u, tf.float32)), -1) + tf.reduce_sum(
            tf.square(tf.cast(positive, tf.float32)), -1) + tf.reduce_sum(tf.square(tf.cast(v, tf.float32)), [-2, -1])
        return EmbeddedBatch(u, positive, inputs["positive"], v, negatives, squared_norms=norms, l2=self.l2)


def create(config, dataset):
    c = config.model.bpr
    return BPRMF(dataset.num_users, dataset.num_items, embedding_dim=c.embedding_dim, l2=c.l2,
                 use_item_bias=c.use_item_bias, init_stddev=c.init_stddev, task=tasks.build(c, dataset))
