"""The reusable layers of CNN-PerMLP: the personalized fully-connected layer (eq. 6), the
colour histogram of the CH-PerMLP baseline, and the learned per-item vectors of runs without
images with their fallback for items no training post has."""
import tensorflow as tf

# What a row that had no training post (a new user, a new item) is read as at scoring time:
# "mean" — the mean of the trained rows (the average user / item), "zero" — a zero vector (no
# signal: eq. 6 is left with b + w · z, resp. the user term), "init" — the row as initialised
# (random, untouched by training; what Keras would do). Training never sees such rows.
UNSEEN = ("zero", "mean", "init")


def _fallback(table, ids, trained, unseen):
    """Rows of ``table`` for ``ids`` [B], those with ``trained[id] == 0`` or ``id < 0`` replaced by the
    ``unseen`` fallback (an ``id < 0`` has no row of its own: "init" gives it the mean)."""
    ids = tf.cast(ids, tf.int64)
    rows = tf.gather(table, tf.maximum(ids, 0))
    if unseen == "init":
        replace = ids < 0
        unseen = "mean"
    else:
        replace = (ids < 0) | (tf.gather(trained, tf.maximum(ids, 0)) <= 0)
    if unseen == "zero":
        fallback = tf.zeros_like(table[0])
    else:
        weights = trained[:, None]
        fallback = tf.reduce_sum(table * weights, 0) / tf.maximum(tf.reduce_sum(weights), 1.0)
    return tf.where(replace[:, None], tf.broadcast_to(fallback, tf.shape(rows)), rows)


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class PersonalizedDense(tf.keras.layers.Layer):
    """ψ_j(u, z) = relu(b_j + w_j · z_j + (V κ_u)_j)  (eq. 6).

    An element-wise weight ``w`` on the visual feature vector ``z`` ``[B, m]`` (one weight
    per feature, not a dense m × m matrix), a bias ``b`` and the user's row of ``V``
    ``[num_users, m]`` (V κ_u with κ_u the one-hot vector of user u is a row lookup).
    Called on ``[z, user]`` with int user indices ``[B]``.

    A user without a learned row — index < 0 (a new user), or a user no training post has
    (``trained_users``, a 0/1 mask) — is read at scoring time as ``unseen`` says: "mean"
    (default), the mean row over the users that had training posts, i.e. the average user,
    which is the non-personalized answer; "zero", no user term; "init", the untrained row as
    initialised (index < 0: the mean). ``personalized=False`` drops the user term altogether
    (the paper's non-personalized CNN baseline).
    """

    def __init__(self, num_users, personalized=True, trained_users=None, init_stddev=0.01, unseen="mean",
                 **kwargs):
        super().__init__(**kwargs)
        self.num_users, self.personalized, self.init_stddev = int(num_users), bool(personalized), init_stddev
        self.unseen = unseen
        self._trained = trained_users

    def build(self, input_shape):
        m = int(input_shape[0][-1])
        self.w = self.add_weight(name="w", shape=[m], initializer="ones")
        self.b = self.add_weight(name="b", shape=[m], initializer="zeros")
        if self.personalized:
            self.V = self.add_weight(name="V", shape=[self.num_users, m],
                                     initializer=tf.keras.initializers.RandomNormal(stddev=self.init_stddev))
            mask = self._trained if self._trained is not None else [1.0] * self.num_users
            self.trained_users = self.add_weight(name="trained_users", shape=[self.num_users], trainable=False,
                                                 initializer=tf.constant_initializer(
                                                     [float(v) for v in mask]))
        super().build(input_shape)

    def user_term(self, user, training=False):
        """(V κ_u) ``[B, m]``; rows without training posts (and user < 0) as ``unseen`` says.
        In training every user has posts: the plain lookup."""
        if training:
            return tf.gather(self.V, tf.maximum(tf.cast(user, tf.int64), 0))
        return _fallback(self.V, user, self.trained_users, self.unseen)

    def call(self, inputs, training=None):
        z, user = inputs
        out = self.b + self.w * z
        if self.personalized:
            out += self.user_term(user, training=bool(training))
        return tf.nn.relu(out)

    def get_config(self):
        return dict(super().get_config(), num_users=self.num_users, personalized=self.personalized,
                    init_stddev=self.init_stddev, unseen=self.unseen)


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class FallbackEmbedding(tf.keras.layers.Layer):
    """A learned vector per row — item (``features: embedding``: z_i of eq. 6 for data without
    images; PITF's item factors) or user (PITF's user factors): ids ``[B]`` → ``[B, dim]``. A row
    no training post has (``trained``, a 0/1 mask; all rows until `set_trained` says otherwise)
    never received a gradient; at scoring time it is read as ``unseen`` says ("zero", "mean" or
    "init", see `UNSEEN`) instead of as a real item or user with a random vector."""

    def __init__(self, num_rows, dim, unseen="init", stddev=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_rows, self.dim, self.unseen, self.stddev = int(num_rows), int(dim), unseen, float(stddev)

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=[self.num_rows, self.dim],
                                          initializer=tf.keras.initializers.RandomNormal(stddev=self.stddev))
        self.trained = self.add_weight(name="trained_rows", shape=[self.num_rows], trainable=False,
                                       initializer="ones")
        super().build(input_shape)

    def set_trained(self, mask):
        """The rows that had training posts (bool or 0/1 ``[num_rows]``)."""
        self.trained.assign(tf.cast(tf.convert_to_tensor(mask), tf.float32))

    def call(self, ids, training=None):
        if training:  # training posts only show trained items: the plain lookup
            return tf.gather(self.embeddings, tf.maximum(tf.cast(ids, tf.int64), 0))
        return _fallback(self.embeddings, ids, self.trained, self.unseen)

    def get_config(self):
        return dict(super().get_config(), num_rows=self.num_rows, dim=self.dim, unseen=self.unseen,
                    stddev=self.stddev)


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class ColourHistogram(tf.keras.layers.Layer):
    """The share of a patch's pixels in each of ``bins³`` RGB colour bins (CH-PerMLP's
    low-level features): pixels ``[B, h, w, 3]`` in 0..255 → ``[B, bins³]``. Not trained."""

    def __init__(self, bins=4, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.bins = int(bins)

    def call(self, pixels):
        k = self.bins
        level = tf.clip_by_value(tf.cast(tf.floor(tf.cast(pixels, tf.float32) * k / 256.0), tf.int32), 0, k - 1)
        joint = level[..., 0] * k * k + level[..., 1] * k + level[..., 2]  # [B, h, w]
        joint = tf.reshape(joint, [tf.shape(joint)[0], -1])
        counts = tf.reduce_sum(tf.one_hot(joint, k ** 3, dtype=tf.float32), axis=1)
        return counts / tf.cast(tf.shape(joint)[1], tf.float32)

    def get_config(self):
        return dict(super().get_config(), bins=self.bins)
