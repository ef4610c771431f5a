"""The reusable layers of CNN-PerMLP: the personalized fully-connected layer (eq. 6) and
the colour histogram of the CH-PerMLP baseline."""
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class PersonalizedDense(tf.keras.layers.Layer):
    """ψ_j(u, z) = relu(b_j + w_j · z_j + (V κ_u)_j)  (eq. 6).

    An element-wise weight ``w`` on the visual feature vector ``z`` ``[B, m]`` (one weight
    per feature, not a dense m × m matrix), a bias ``b`` and the user's row of ``V``
    ``[num_users, m]`` (V κ_u with κ_u the one-hot vector of user u is a row lookup).
    Called on ``[z, user]`` with int user indices ``[B]``.

    A user index < 0 is a user without a learned row (a new user): they get the mean row
    over the users that had training posts (``trained_users``, a 0/1 mask), i.e. the
    average user, which is the non-personalized answer. ``personalized=False`` drops the
    user term altogether (the paper's non-personalized CNN baseline).
    """

    def __init__(self, num_users, personalized=True, trained_users=None, init_stddev=0.01, **kwargs):
        super().__init__(**kwargs)
        self.num_users, self.personalized, self.init_stddev = int(num_users), bool(personalized), init_stddev
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

    def user_term(self, user):
        """(V κ_u) ``[B, m]``; the mean trained row for user < 0."""
        user = tf.cast(user, tf.int64)
        rows = tf.gather(self.V, tf.maximum(user, 0))
        weights = self.trained_users[:, None]
        mean = tf.reduce_sum(self.V * weights, 0) / tf.maximum(tf.reduce_sum(weights), 1.0)
        return tf.where((user >= 0)[:, None], rows, mean[None, :])

    def call(self, inputs):
        z, user = inputs
        out = self.b + self.w * z
        if self.personalized:
            out += self.user_term(user)
        return tf.nn.relu(out)

    def get_config(self):
        return dict(super().get_config(), num_users=self.num_users, personalized=self.personalized,
                    init_stddev=self.init_stddev)


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
