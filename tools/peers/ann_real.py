"""Section ``peers_ann_real`` — point 4 on real embeddings: the same contenders and sweep as ``peers_ann``
on the trained vectors of tfvrec's strongest BPR-MF on Flickr F.S.

Items: the 31,460 item vectors [q_i, b_i] of the shipped recipe's run (``configs/bpr_flickr_fs.yaml``,
the ``peers_bpr`` run, trained when missing); queries: the 4,418 user vectors [p_u, 1] — what the export
indexes and what a known user's request sends. Learned factors are not clustered around well-separated
centres like the synthetic catalogue, so this is where the export's default leaves_to_search is checked.
"""
import os

import numpy as np

from harness import Section
from harness import paths as P
from peers.ann import ANN_PATHS, K, compare

TITLE = "Approximate nearest neighbours on real embeddings: BPR-MF factors of Flickr F.S"


def vectors(ctx):
    """Item vectors [q_i, b_i] and user vectors [p_u, 1] of the shipped BPR-MF run (bpr_flickr_fs's)."""
    import tensorflow as tf

    import bench_bpr_flickr
    model = bench_bpr_flickr.shipped_run(ctx).model()
    items = model.item_model(tf.range(model.num_items, dtype=tf.int64)).numpy().astype(np.float32)
    users = model.user_model(tf.range(model.num_users, dtype=tf.int64)).numpy().astype(np.float32)
    return items, users


def run(ctx):
    items, queries = vectors(ctx)
    if ctx.opt("items"):  # quick mode: the first item and user vectors only
        items, queries = items[:ctx.opt("items")], queries[:ctx.opt("queries")]
    ctx.log(f"ann_real: {len(items):,} item vectors × {items.shape[1]}, {len(queries):,} user queries")
    single = ctx.opt("single")
    body = compare(ctx, items, queries, single)
    return "\n".join([
        f"## {TITLE}", "",
        f"Items: the {len(items):,} item vectors [q_i, b_i] (d={items.shape[1]}) of the shipped BPR-MF run "
        f"(configs/bpr_flickr_fs.yaml, the bpr_flickr_fs section's run); queries: all {len(queries):,} user vectors "
        f"[p_u, 1] (single-query timings over the first {single}); dot product, K={K}, the same contenders and knobs "
        f"as peers_ann. In-process on the {os.cpu_count()} cores.", "", body])


SECTIONS = [Section(
    name="peers_ann_real", title=TITLE, run=run, needs=("faiss", "hnswlib"), data=("flickr_fs",),
    paths=ANN_PATHS + P.TRAINING + P.model("bpr") + P.config("bpr_flickr_fs.yaml") + ("tools/peers/ann.py",
                                                                                      "tools/bench_bpr_flickr.py"),
    runs="bench_peers", group="peers", make="bench-peers",
    options={"single": 500, "min_seconds": 1.0, "items": 0, "queries": 0},
    quick={"single": 20, "min_seconds": 0.05, "items": 5000, "queries": 200})]
