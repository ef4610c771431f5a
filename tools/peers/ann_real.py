"""Section ``peers_ann_real`` — point 4 on real embeddings: the same contenders and sweep as ``peers_ann``
on the trained vectors of tfvrec's strongest BPR-MF on Flickr F.S.

Items: the 31,460 item vectors [q_i, b_i] of the shipped recipe's run (``configs/bpr_flickr_fs.yaml``,
the ``peers_bpr`` run, trained when missing); queries: the 4,418 user vectors [p_u, 1] — what the export
indexes and what a known user's request sends. Learned factors are not clustered around well-separated
centres like the synthetic catalogue, so this is where the export's default leaves_to_search is checked.
"""
import numpy as np

from peers import log
from peers.ann import K, compare

SECTION = "peers_ann_real"
TITLE = "Approximate nearest neighbours on real embeddings: BPR-MF factors of Flickr F.S"
SHIPPED = "tfvrec BPR-MF (shipped: BPR-Opt, SGD)"


def vectors(quick):
    import tensorflow as tf

    from peers.bpr import tfvrec_run
    model = tfvrec_run(SHIPPED, [], quick)[0]
    items = model.item_model(tf.range(model.num_items, dtype=tf.int64)).numpy().astype(np.float32)
    users = model.user_model(tf.range(model.num_users, dtype=tf.int64)).numpy().astype(np.float32)
    return items, users


def run(args):
    items, queries = vectors(args.quick)
    log(f"ann_real: {len(items):,} item vectors × {items.shape[1]}, {len(queries):,} user queries")
    single = 100 if args.quick else 500
    body = compare(items, queries, single, args.quick)
    return "\n".join([
        f"## {TITLE}", "",
        "Command: `.venv/bin/python tools/bench_peers.py --sections ann_real` (bench extra). Items: the "
        f"{len(items):,} item vectors [q_i, b_i] (d={items.shape[1]}) of the peers_bpr section's shipped BPR-MF run; "
        f"queries: all {len(queries):,} user vectors [p_u, 1] (single-query timings over the first {single}); dot "
        f"product, K={K}, the same contenders and knobs as peers_ann. In-process on the 2 cores.", "", body])
