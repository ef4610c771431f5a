"""A compute ceiling measured on the machine, in the same run as the figure it bounds.

Every "% of peak" figure divides by a rate measured here, never by a typed one: float32 GEMM
(``tf.matmul`` in a ``tf.function``, TensorFlow's own kernels and thread pool — the threads of the
measured training in the same process) at the shapes that matter to the measured model, each timed
for at least ``seconds`` in a few windows; the best window of each shape is its rate, the best shape
the ceiling. On a shared machine the ceiling falls with the load as the measurement does, and the
load averages are in the section's stamp.

    rates = gemm_rates([(2560, 2048, 200), (2048, 2560, 200)])
    ceiling = max(r.gflops for r in rates)
"""
import dataclasses
import time


@dataclasses.dataclass
class Rate:
    m: int
    k: int
    n: int
    gflops: float  # best window: 2·m·k·n FLOP per product / seconds
    threads: str  # TensorFlow's intra-op threads ("all cores" when left to TensorFlow)

    @property
    def shape(self):
        return f"[{self.m}×{self.k}]·[{self.k}×{self.n}]"


def threads():
    import os

    import tensorflow as tf
    n = tf.config.threading.get_intra_op_parallelism_threads()
    return f"{n} intra-op threads" if n else f"TensorFlow's default intra-op pool ({os.cpu_count()} cores)"


def gemm_rates(shapes, seconds=0.5, windows=3):
    """float32 ``[m, k] · [k, n]`` GFLOP/s for each ``(m, k, n)`` of ``shapes`` (a `Rate` each)."""
    import tensorflow as tf

    @tf.function(jit_compile=False)
    def products(a, b, repeat):
        # Each product differs (the smaller operand scaled by the step), so none can be hoisted or cached.
        total = tf.zeros([], tf.float32)
        for i in tf.range(repeat):
            scale = 1.0 + tf.cast(i, tf.float32) * 1e-6
            if a.shape[0] * a.shape[1] <= b.shape[0] * b.shape[1]:
                total += tf.reduce_sum(tf.matmul(a * scale, b))
            else:
                total += tf.reduce_sum(tf.matmul(a, b * scale))
        return total

    out = []
    for m, k, n in shapes:
        a = tf.random.stateless_uniform([m, k], seed=[1, 2])
        b = tf.random.stateless_uniform([k, n], seed=[3, 4])
        flop = 2.0 * m * k * n
        products(a, b, tf.constant(1)).numpy()  # trace and warm up
        start = time.perf_counter()
        products(a, b, tf.constant(1)).numpy()
        once = max(time.perf_counter() - start, 1e-6)
        repeat = max(1, int(seconds / windows / once))
        best = 0.0
        for _ in range(windows):
            start = time.perf_counter()
            products(a, b, tf.constant(repeat)).numpy()
            best = max(best, repeat * flop / (time.perf_counter() - start) / 1e9)
        out.append(Rate(m, k, n, best, threads()))
    return out


def table(rates):
    """Markdown rows of the measured rates (the ceiling marked)."""
    ceiling = max(r.gflops for r in rates)
    lines = ["| float32 GEMM (tf.matmul) | GFLOP/s (best of the windows) |", "|---|---:|"]
    for r in rates:
        lines.append(f"| {r.shape} | {r.gflops:,.1f}{' **(ceiling)**' if r.gflops == ceiling else ''} |")
    return "\n".join(lines)
