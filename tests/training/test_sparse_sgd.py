"""SparseSGD: Keras' SGD update on row-sparse gradients, worked by hand and against Keras."""
import numpy as np
import tensorflow as tf

from tfvrec.training.sparse_sgd import SparseSGD

TABLE = np.arange(12, dtype=np.float32).reshape(4, 3)
ROWS = tf.constant([1, 3, 1])  # row 1 twice: its gradient rows must add up


def train(optimizer, steps, dense=False):
    variable = tf.Variable(TABLE)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(variable, ROWS)))
        gradient = tape.gradient(loss, variable)
        assert isinstance(gradient, tf.IndexedSlices)
        optimizer.apply_gradients([(tf.convert_to_tensor(gradient) if dense else gradient, variable)])
    return variable.numpy()


def test_one_step_worked_by_hand():
    # d/dv1 of 2·‖v1‖² is 4·v1 (row 1 gathered twice), of ‖v3‖² 2·v3: one step at 0.1 scales
    # row 1 by 0.6 and row 3 by 0.8; rows 0 and 2 are not touched.
    result = train(SparseSGD(0.1), 1)
    np.testing.assert_allclose(result[1], 0.6 * TABLE[1], rtol=1e-6)
    np.testing.assert_allclose(result[3], 0.8 * TABLE[3], rtol=1e-6)
    np.testing.assert_array_equal(result[[0, 2]], TABLE[[0, 2]])


def test_matches_keras_sgd_on_the_dense_gradient_with_and_without_momentum():
    for momentum in (0.0, 0.9):
        sparse = train(SparseSGD(0.05, momentum=momentum), 3)
        dense = train(tf.keras.optimizers.SGD(0.05, momentum=momentum), 3, dense=True)
        np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-6)
