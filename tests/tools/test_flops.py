"""The arithmetic behind curatornet_throughput's "% of the GEMM ceiling": FLOPs derived from the model, a ceiling
measured, no typed peak.

`bench_curatornet.executed_flops` counts what a training step executes; here it is checked against the
matrix products TensorFlow itself puts in the gradient graph of CuratorNet's own towers (`item_tower`,
`profile_tower`): forward and backward of every Dense layer, but no input gradient for the first item
layer (its input is the frozen content), the item tower once per distinct item of the batch.
"""
import os
import sys

import numpy as np
import tensorflow as tf

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import bench_curatornet  # noqa: E402
from harness import peak  # noqa: E402


def graph_matmul_flops(function, *specs):
    """2·m·k·n summed over the MatMul ops of ``function``'s graph (static shapes)."""
    total = 0
    for op in function.get_concrete_function(*specs).graph.get_operations():
        if op.type == "MatMul":
            a, b = op.inputs[0].shape, op.inputs[1].shape
            m = a[1] if op.get_attr("transpose_a") else a[0]
            k = a[0] if op.get_attr("transpose_a") else a[1]
            n = b[0] if op.get_attr("transpose_b") else b[1]
            total += 2 * m * k * n
    return total


def test_executed_flops_are_the_matrix_products_of_a_training_step():
    from tfvrec.models.curatornet import model as curatornet
    d, h, p, distinct, batch, profile = 48, 20, 30, 37, 8, 3
    item, tower = curatornet.item_tower(d, h, 1e-4), curatornet.profile_tower(h, p, 1e-4)
    rows = tf.constant(np.random.default_rng(0).integers(0, distinct, (batch, profile)), tf.int64)

    @tf.function
    def step(content):
        with tf.GradientTape() as tape:
            vectors = item(content)  # once per distinct item, as CuratorNet._triplet_vectors does
            users = tower(tf.RaggedTensor.from_tensor(tf.gather(vectors, rows)))
            loss = tf.reduce_sum(users) + tf.reduce_sum(vectors)
        return tape.gradient(loss, item.trainable_variables + tower.trainable_variables)

    counted = graph_matmul_flops(step, tf.TensorSpec([distinct, d], tf.float32))
    assert counted == bench_curatornet.executed_flops(d, h, p, distinct, batch)


def test_the_old_count_overstated_the_work():
    # The figure of "127.5% of peak": 3 × forward per triplet, every item of every triplet through the tower.
    d, h, p, batch, mean_profile = 2048, 200, 300, 512, 2.3
    old = 3 * ((mean_profile + 2) * 2 * (d * h + h * h) + 2 * (2 * h * p + p * h + h * h))
    items_per_batch = (mean_profile + 2) * batch
    # Even with every item of a batch distinct, the first layer's missing input gradient makes it 1.37× too much;
    # with half of them distinct (the item tower runs once per distinct item), 2.4×.
    for share, ratio in ((1.0, 0.727), (0.5, 0.415)):
        executed = bench_curatornet.executed_flops(d, h, p, share * items_per_batch, batch) / batch
        assert abs(executed / old - ratio) < 0.001


def test_the_gemm_ceiling_is_measured():
    rates = peak.gemm_rates([(64, 128, 32), (128, 64, 64)], seconds=0.05, windows=2)
    assert [(r.m, r.k, r.n) for r in rates] == [(64, 128, 32), (128, 64, 64)]
    assert all(0 < r.gflops < 1e5 for r in rates)
    assert "(ceiling)" in peak.table(rates) and "intra-op" in rates[0].threads
