"""Sections ``curatornet_ugallery``, ``curatornet_posters``, ``curatornet_throughput``: CuratorNet (Cartagena et
al.) on UGallery and MovieLens posters, the paper's Table 2 and Fig. 4, and its training throughput.

Per data set, the table of the paper's protocol (test = last basket of each user with ≥ 2 baskets, full
ranking of every item not in the user's training history; AUC, R/P/nDCG @20 and @100):

* CuratorNet with λ ∈ {0, 1e-4, 1e-3}, guideline sampling (D1-D6);
* CuratorNet λ = 1e-4 with random-negative sampling (the paper's §5.1 ablation);
* VisRank, VBPR (λ = 1e-4, guidelines D3 + D4), Random, and the Oracle row;

and (``curatornet_throughput``) the training throughput (triplets/s) and peak memory of a 10-million-triplet
run, with the FLOPs the model executes per triplet derived from its layers and the batches' distinct items,
against a float32 GEMM ceiling measured in the same run (`harness.peak`).

    python tools/bench.py --sections curatornet_ugallery --option triplets=2000000
    python tools/bench.py --sections curatornet_throughput

Needs $TFVREC_SHARED_DATA (default ../shared/data: ugallery, movielens_posters). The posters' EfficientNet-Lite0
features come from the ``features`` section's file (`bench_features.posters_config`, extracted when missing).
"""
import os
import resource
import shutil

import numpy as np

from harness import Section, keyed
from harness import paths as P
from harness import peak

COLUMNS = ["auc", "recall@20", "precision@20", "ndcg@20", "recall@100", "precision@100", "ndcg@100"]
HEADER = "| method | λ | sampling | AUC | R@20 | P@20 | nDCG@20 | R@100 | P@100 | nDCG@100 |"
# Cartagena et al., Table 2 (UGallery, ResNet50 embeddings) and §5.1.
PAPER = [("Oracle", "–", "", [1.0, 1.0, .0655, 1.0, 1.0, .0131, 1.0]),
         ("CuratorNet", ".0001", "guidelines", [.7204, .1683, .0106, .0966, .3200, .0040, .1246]),
         ("CuratorNet", ".001", "guidelines", [.7177, .1566, .0094, .0895, .2937, .0037, .1160]),
         ("VisRank", "–", "", [.7151, .1521, .0093, .0956, .2765, .0034, .1195]),
         ("CuratorNet", "0", "guidelines", [.7131, .1689, .0100, .0977, .3048, .0038, .1239]),
         ("VBPR", ".0001", "guidelines", [.6641, .1368, .0081, .0728, .2399, .0030, .0923]),
         ("Random", "–", "", [.4973, .0103, .0006, .0041, .0322, .0005, .0098])]
PAPER_RANDOM_SAMPLING_AUC = .6602  # CuratorNet with random negatives, §5.1 / Fig. 4
CONFIGS = {"ugallery": "curatornet_ugallery.yaml", "posters": "curatornet_posters.yaml"}
# Quick mode: fewer clusters (a toy catalogue), one epoch.
QUICK_SETS = ["model.curatornet.num_clusters=8", "model.curatornet.cluster_restarts=1"]


def budget_sets(triplets, batch, epochs=10):
    """Train on ``triplets`` triplets (one pass over a D_S of that size) in ``epochs`` epochs."""
    steps = max(1, -(-triplets // (batch * epochs)))
    return [f"model.curatornet.num_triplets={triplets}", f"trainer.epochs={epochs}",
            f"trainer.steps_per_epoch={steps}", f"trainer.batch_size={batch}"]


def config_of(ctx, name, sets=()):
    """The config of data set ``name`` (the posters' with their features; quick: a toy copy)."""
    if name == "posters":
        import bench_features
        return bench_features.posters_config(ctx, CONFIGS[name], sets)
    return ctx.config(CONFIGS[name], sets)


def table(ctx, name):
    base = config_of(ctx, name)
    triplets, vbpr_triplets, epochs = ctx.opt("triplets"), ctx.opt("vbpr_triplets"), ctx.opt("epochs")
    rows, notes = [], []
    for index, (lam, sampling) in enumerate(ctx.opt("rows")):
        method = "CuratorNet"
        baselines = "[oracle,visrank,vbpr,random]" if index == 0 else "[]"
        sets = [f"model.curatornet.l2={lam}", f"model.curatornet.sampling={sampling}", f"eval.baselines={baselines}",
                "trainer.verbose=2", f"model.vbpr.num_triplets={vbpr_triplets}",
                *budget_sets(triplets, base.trainer.batch_size, epochs), *ctx.opt("set")]
        if ctx.quick:
            sets += QUICK_SETS + ["trainer.tensorboard_summaries=false"]
        config = config_of(ctx, name, sets)
        config.runtime.model_dir = ctx.run_dir(name, keyed(f"{sampling}_l2_{lam:g}", sets))
        trained = ctx.trained(config)
        results = dict(trained.results())
        seconds = trained.train_seconds
        if index == 0:
            notes.append(trained.run.metrics["title"])
            vbpr = config.model.vbpr
            how = {"vbpr": vbpr.sampling + (f" ({'+'.join(vbpr.guidelines)})" if vbpr.sampling == "guidelines" else "")}
            lam_text = {"vbpr": f"{vbpr.l2:g}"}
            for row, label in (("oracle", "Oracle"), ("visrank", "VisRank"), ("vbpr", "VBPR"), ("random", "Random")):
                rows.append((label, lam_text.get(row, "–"), how.get(row, ""), results[row]))
        rows.append((method, f"{lam:g}", sampling, results["curatornet"]))
        notes.append(f"CuratorNet λ={lam:g} {sampling}: {seconds:.0f} s training "
                     f"({triplets / max(seconds, 1e-9):,.0f} triplets/s)")
    order = {"Oracle": 0, "Random": 9}
    rows.sort(key=lambda r: (order.get(r[0], 1), -r[3].metrics["auc"]))
    users = rows[0][3].num_users
    lines = [f"## CuratorNet on {'UGallery' if name == 'ugallery' else 'MovieLens posters'}", "",
             f"Config `configs/{CONFIGS[name]}`. Protocol of the paper (§4.2): test = last basket "
             f"of each user with ≥ 2 baskets ({users} users), full ranking of every item not in the user's training "
             "history; one deterministic run per row.", "",
             f"Each CuratorNet row: {triplets:,} training triplets (one pass over D_S in {epochs} epochs, batch "
             f"{base.trainer.batch_size}, Adam lr {base.trainer.learning_rate}), no early stopping (the data set has "
             f"no validation split). VBPR: {vbpr_triplets:,} triplets. Sorted by AUC as in the paper's Table 2.",
             "", HEADER, "|" + "---|" * 10]
    for label, lam, sampling, result in rows:
        m = result.metrics
        lines.append(f"| {label} | {lam} | {sampling} | " + " | ".join(f"{m[c]:.4f}" for c in COLUMNS) + " |")
    guided = next(r[3].metrics["auc"] for r in rows if r[0] == "CuratorNet" and r[1] == "0.0001"
                  and r[2] == "guidelines")
    randomized = next(r[3].metrics["auc"] for r in rows if r[2] == "random")
    visrank = next(r[3].metrics["auc"] for r in rows if r[0] == "VisRank")
    lines += ["", f"Sampling ablation (λ = 1e-4, same seed and budget): guidelines AUC {guided:.4f} vs random "
                  f"negatives {randomized:.4f} (paper: .7204 vs {PAPER_RANDOM_SAMPLING_AUC}). "
                  f"CuratorNet λ=1e-4 vs VisRank on AUC: {guided:.4f} vs {visrank:.4f}.", ""]
    lines += ["Run notes: " + "; ".join(notes) + "."]
    if name == "ugallery":
        lines += ["", "Paper (Cartagena et al., Table 2; the *private* UGallery test set and ResNet50 embeddings, "
                      "so not directly comparable: here the public purchases are re-split and items have only "
                      "their artist as content):", "", HEADER, "|" + "---|" * 10]
        lines += [f"| {label} | {lam} | {how} | " + " | ".join(f"{v:.4f}" for v in values) + " |"
                  for label, lam, how, values in PAPER]
    return "\n".join(lines)


def executed_flops(d, h, p, distinct_items, batch):
    """FLOPs one training step of CuratorNet executes on a batch of ``batch`` triplets whose profiles,
    positives and negatives hold ``distinct_items`` distinct items (multiply-add = 2 FLOPs; dense layers
    only: biases, SELU, pooling, the scores and the optimizer's updates are left out, so this is a floor).

    Item tower Φ, once per distinct item (`CuratorNet._triplet_vectors`): Dense(d→h) forward 2dh, backward
    only the weight gradient 2dh (its input, the frozen content, has no gradient); Dense(h→h) forward 2h²,
    backward 4h² (weight and input gradients). Profile tower, once per triplet: Dense(2h→p), Dense(p→h),
    Dense(h→h), each forward 2·in·out and backward 4·in·out.
    """
    item = 4 * d * h + 6 * h * h
    profile = 6 * (2 * h * p + p * h + h * h)
    return distinct_items * item + batch * profile


def throughput(ctx):
    """Stream ``triplets`` triplets through training; triplets/s and peak RSS, and the FLOPs executed against
    a GEMM ceiling measured here.

    The run uses UGallery's real purchase histories (2-3 items per profile, as in the
    paper) with ``dim``-d item vectors standing in for the paper's ResNet50 embeddings
    (Gaussian vectors: the arithmetic is that of real embeddings).
    """
    from tfvrec.data import features as features_lib
    from tfvrec.data.dataset import load_dataset
    from tfvrec.data.resolve import dataset_path
    from tfvrec.models.curatornet import model as curatornet

    source = dataset_path(ctx.config(CONFIGS["ugallery"]).data)
    dim, total, batch = ctx.opt("dim"), ctx.opt("throughput_triplets"), 512
    feature_set = f"gaussian_{dim}"
    data_dir = ctx.run_dir("throughput_data")
    if not os.path.exists(os.path.join(data_dir, "features", f"{feature_set}.npz")):
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.copytree(source, data_dir)
        dataset = load_dataset(data_dir)
        vectors = np.abs(np.random.default_rng(0).normal(size=(dataset.num_items, dim))).astype(np.float32)
        features_lib.save_features(os.path.join(data_dir, "features", f"{feature_set}.npz"), dataset.item_ids,
                                   vectors)
    sets = ["data.source=directory", f"data.path={data_dir}", f"data.features={feature_set}",
            "model.curatornet.item_content=features", f"model.curatornet.num_clusters={ctx.opt('clusters')}",
            f"model.curatornet.cluster_restarts={ctx.opt('cluster_restarts')}",
            f"model.curatornet.num_triplets={total}", "trainer.epochs=10",
            f"trainer.steps_per_epoch={-(-total // (batch * 10))}", f"trainer.batch_size={batch}",
            "trainer.verbose=2", "eval.baselines=[]", "trainer.checkpoint_every_steps=5000"]
    if ctx.quick:
        sets += ["trainer.tensorboard_summaries=false"]
    config = ctx.config(CONFIGS["ugallery"], sets)
    config.runtime.model_dir = ctx.run_dir("throughput_run")
    dataset = load_dataset(data_dir)

    # The sampler alone: how fast triplets are drawn, hashed and deduplicated; and the distinct items
    # of the training batches (what the item tower executes on).
    import time
    start = time.time()
    sampler = curatornet.build_sampler(dataset, config)
    setup = time.time() - start
    start, count, items = time.time(), 0, 0
    for chunk in sampler.stream(0, ctx.opt("sampler_triplets"), chunk=config.model.curatornet.sampler_chunk):
        count += len(chunk)
        items += int(sampler.profile_lengths(chunk).sum())
    sampler_rate = count / (time.time() - start)
    mean_profile = items / count
    distinct = []
    chunk = config.model.curatornet.sampler_chunk
    for n, b in enumerate(sampler.batches(config.runtime.seed, total, batch, chunk=chunk)):
        values = np.concatenate([b["profile"][b["profile"] >= 0], b["positive"], b["negative"]])
        distinct.append(len(np.unique(values)))
        if n + 1 >= ctx.opt("flop_batches"):
            break
    distinct_items = float(np.mean(distinct))

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.time()
    trained = ctx.trained(config, fresh=True)  # a timing: always trained here
    wall = time.time() - start
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    state = trained.state
    seconds = state.train_seconds
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    triplets = state.completed_epochs * state.steps_per_epoch * batch
    rate = triplets / seconds

    d, h, p = dim, config.model.curatornet.item_units, config.model.curatornet.profile_units
    per_batch = executed_flops(d, h, p, distinct_items, batch)
    per_triplet = per_batch / batch
    u = int(round(distinct_items))
    rates = peak.gemm_rates([(u, d, h), (d, u, h), (u, h, h), (batch, 2 * h, p)], seconds=ctx.opt("gemm_seconds"))
    ceiling = max(r.gflops for r in rates)
    achieved = rate * per_triplet / 1e9
    text = "\n".join([
        f"## CuratorNet training throughput ({triplets:,} triplets)", "",
        f"UGallery's real purchase histories and baskets (guidelines {'/'.join(sampler.names)}, mean profile "
        f"{mean_profile:.2f} items), items as {dim}-d vectors (the shape of the paper's ResNet50 embeddings; Gaussian "
        f"values), visual clusters from them (PCA {config.model.curatornet.cluster_dims}, k-means "
        f"{config.model.curatornet.num_clusters}, best of {config.model.curatornet.cluster_restarts}); batch {batch}, "
        f"Adam, default (single-device) strategy on {os.cpu_count()} CPU cores.", "",
        "| triplets | training time | triplets/s | peak RSS | CPU time | sampler alone |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {triplets:,} | {seconds:,.0f} s | **{rate:,.0f}** | {peak_rss:,.0f} MB | {cpu:,.0f} s "
        f"({cpu / wall:.2f} cores busy) | {sampler_rate:,.0f} triplets/s |", "",
        f"Arithmetic executed (`executed_flops`: dense layers, forward + backward, no input gradient for the first "
        f"layer, whose input is the frozen content): the item tower runs once per distinct item of a batch — "
        f"{distinct_items:,.0f} distinct items per batch of {batch} on average over {len(distinct)} batches of the "
        f"training stream — and the profile tower once per triplet: {per_batch / 1e9:.2f} GFLOP per batch, "
        f"{per_triplet / 1e6:.2f} MFLOP per triplet. At the measured **{rate:,.0f} triplets/s** that is "
        f"**{achieved:.1f} GFLOP/s, {achieved / ceiling:.1%} of the GEMM ceiling** measured in this run "
        f"({ceiling:.1f} GFLOP/s: the best of the model's own matrix shapes below, {rates[0].threads}; the "
        "training time includes the sampler, input pipeline, optimizer and per-epoch bookkeeping, so the share "
        "is a floor of the steps' own).", "",
        peak.table(rates), "",
        f"Memory: peak RSS {peak_rss:,.0f} MB for the whole process (TensorFlow runtime, data set, "
        f"{rss_before:,.0f} MB before training); the stream keeps one 8-byte hash per emitted triplet "
        f"({triplets * 8 / 1e6:,.0f} MB at "
        f"{triplets:,}), never the triplets. Sampler set-up (clusters, per-user indexes) {setup:.0f} s."])
    return text


def run_ugallery(ctx):
    return table(ctx, "ugallery")


def run_posters(ctx):
    return table(ctx, "posters")


PATHS = P.TRAINING + P.EVALUATION + P.model("curatornet") + P.model("vbpr")
TABLE_OPTIONS = {"triplets": 2_000_000, "vbpr_triplets": 2_000_000, "epochs": 10, "set": [],
                 "rows": [[1e-4, "guidelines"], [0.0, "guidelines"], [1e-3, "guidelines"], [1e-4, "random"]]}
TABLE_QUICK = {"triplets": 3000, "vbpr_triplets": 2000, "epochs": 1, "rows": [[1e-4, "guidelines"], [1e-4, "random"]]}
SECTIONS = [
    Section(name="curatornet_ugallery", title="CuratorNet on UGallery: the paper's Table 2 and its sampling ablation",
            run=run_ugallery, paths=PATHS + P.config(CONFIGS["ugallery"]), data=("ugallery",),
            group="curatornet", make="bench-curatornet", options=dict(TABLE_OPTIONS), quick=dict(TABLE_QUICK)),
    Section(name="curatornet_posters", title="CuratorNet on the MovieLens posters (EfficientNet-Lite0 features)",
            run=run_posters, paths=PATHS + P.config(CONFIGS["posters"]) + ("tools/bench_features.py",),
            data=("movielens_posters",), group="curatornet", make="bench-curatornet",
            options=dict(TABLE_OPTIONS), quick=dict(TABLE_QUICK)),
    Section(name="curatornet_throughput", title="CuratorNet training throughput, FLOPs executed vs a measured GEMM "
            "ceiling", run=throughput, paths=PATHS + P.config(CONFIGS["ugallery"]) + ("tools/harness/peak.py",),
            data=("ugallery",), group="curatornet", make="bench-curatornet",
            options={"throughput_triplets": 10_000_000, "dim": 2048, "clusters": 100, "cluster_restarts": 20,
                     "sampler_triplets": 1_000_000, "flop_batches": 200, "gemm_seconds": 1.0},
            quick={"throughput_triplets": 20_480, "dim": 256, "clusters": 8, "cluster_restarts": 1,
                   "sampler_triplets": 20_000, "flop_batches": 5, "gemm_seconds": 0.1}),
]
