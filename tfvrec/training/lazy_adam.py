"""Adam that updates only the embedding rows a batch touches ("lazy" Adam, as in TF-Addons).

Keras' Adam decays the first and second moments of *every* row of an embedding
table on every step, even for sparse gradients: on Flickr F.S that is several
dense passes over 36k×65 floats per step, most of the step time. Lazy Adam
applies the Adam rule to the gradient's rows only — the standard choice for
recommender embeddings; dense gradients (attention, towers) get plain Adam.
"""
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfvrec")
class LazyAdam(tf.keras.optimizers.Adam):

    def __init__(self, learning_rate=0.001, jit_compile=False, **kwargs):
        # XLA turns the row scatters into dense updates, undoing the point.
        super().__init__(learning_rate=learning_rate, jit_compile=jit_compile, **kwargs)

    def _deduplicate_sparse_grad(self, grads):
        if self.amsgrad:  # Keras' Adam path, which needs unique rows
            return super()._deduplicate_sparse_grad(grads)
        return grads  # update_step sums the rows of repeated indices itself (once, not twice)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        key = self._var_key(variable)
        m, v = self._momentums[self._index_dict[key]], self._velocities[self._index_dict[key]]
        # One update per row: sum the gradients of repeated indices first.
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
