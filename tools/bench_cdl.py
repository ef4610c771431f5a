"""Section ``cdl-posters``: CDL (Lei et al., CVPR 2016) on MovieLens posters, the paper's §6 protocol.

* the P@K / R@K table (K = 1, 5, 10, 20) of CDL-CE, CDL-hinge, CDL with the frozen
  EfficientNet-Lite0 backbone, TwoNets, CDL with tfrs' retrieval loss, Borda count over pretrained
  CNN features, Borda count over colour histograms, BPR-MF, popularity and random: each trained row
  mean ± std over ``seeds`` training seeds (each seed's figure itself a mean over ``repeats`` draws of
  the candidates, the same draws for every seed), and a paired t-test over users of CDL-CE against
  every other row on per-user P@20 averaged over the seeds;
* the same tuning for every trained row (the CDL variants and BPR-MF): one 3 × 3 grid of learning
  rate × λ (weight decay for the CDL towers, ``model.bpr.l2`` for BPR-MF) centred on each row's
  default (`GRIDS`), each point trained with seed 0 and early stopping on the holdout carved from
  the training likes (the hidden favourites are never looked at) within its epoch budget (the CDL
  rows' ``epochs`` option; BPR-MF its baseline trainer's, the BPR experiment's); a winner
  on an edge widens that edge (×3 on the learning rate, ×10 on λ) up to ``widen`` times; the
  chosen point is then trained with the other seeds (seed 0's run is reused);
* the training time of each trained row (with ``time_shipped``, also the wall clock of
  ``tfvrec train --config configs/cdl_posters.yaml`` as shipped, its own split);
* training throughput (triplets/s, images/s) of the CPU tower and of the paper's
  AlexNet-size tower (256 px, d = 1024).

The split is the paper's (§6): every user with 40–200 likes (ratings ≥ 4 on movies with
a poster) hides 20 of them (`tfvrec cdl-split`); each is ranked among 100 candidates
(``candidates:100``), so random ranking gives P@K = 0.2. Runs live in
``runs/bench_cdl/`` and are reused (or resumed) while the measured code is unchanged. The pixel
towers take 8–9 min a run on 2 CPU cores: the whole section (grids and seeds of five variants) is
hours; ``--option "variants=['CDL-CE', 'CDL-pretrained']"`` measures fewer rows.

    python tools/bench.py --sections cdl-posters [--option seeds=3 --option repeats=5]
"""
import os
import subprocess
import sys
import time

import numpy as np

from bench_cnn_permlp import mean_std, widened  # the same cells and widening rule as CNN-PerMLP's tables
from bench_new_items import per_user_mean  # per-user values averaged over seeds, as the new-items tables
from harness import REPO, Section, keyed, quick_sets
from harness import paths as P
from harness import toy

CONFIG = "cdl_posters.yaml"
KS = (1, 5, 10, 20)
VARIANTS = {  # row -> overrides of configs/cdl_posters.yaml
    "CDL-CE": [],
    "CDL-hinge": ["model.cdl.loss=hinge"],
    "CDL-pretrained": ["model.cdl.backbone=efficientnet_lite0", "model.cdl.fc_units=[512]", "model.cdl.augment=false"],
    "TwoNets": ["model.cdl.loss=pointwise"],
    "CDL-retrieval": ["model.cdl.loss=retrieval"],  # tfrs' softmax over −D (issue: the retrieval objective)
}


def base_config(ctx):
    """configs/cdl_posters.yaml (quick: a toy copy of the posters data set, the quick features' posters)."""
    if not ctx.quick:
        return ctx.config(CONFIG)
    import bench_features
    from tfvrec.data import features as features_lib
    ids, _ = features_lib.load_features(bench_features.ensure_features(ctx))
    return toy.config(ctx, CONFIG, users=None, items=ids.tolist())


def paper_split(ctx, base):
    from tfvrec.data.resolve import dataset_path
    from tfvrec.models.cdl.protocol import write_paper_split
    source = dataset_path(base.data)
    rule = [ctx.opt("min_likes"), ctx.opt("max_likes"), ctx.opt("hidden")]
    out = ctx.run_dir(keyed("posters_paper_split", [source] + rule))
    if not os.path.isdir(out):
        _, users = write_paper_split(source, out, min_likes=rule[0], max_likes=rule[1], hidden=rule[2], seed=0)
        ctx.log(f"paper split: {users} users hide {rule[2]} likes each -> {out}")
    return out


# The grid of every trained row: learning rate × λ, 3 × 3 for each, centred on the row's default (the CDL towers:
# configs/cdl_posters.yaml's Adam rate 1e-3 and the paper's weight decay 5e-4; BPR-MF: its baseline trainer's
# lazy-Adam rate 1e-3 and model.bpr.l2 1e-5).
GRIDS = {"CDL": {"lr": [3e-4, 1e-3, 3e-3], "l2": [5e-5, 5e-4, 5e-3]},
         "BPR-MF": {"lr": [3e-4, 1e-3, 3e-3], "l2": [1e-6, 1e-5, 1e-4]}}
GRID_KEYS = {"CDL": ("trainer.learning_rate", "trainer.weight_decay"),
             "BPR-MF": ("trainer.learning_rate", "model.bpr.l2")}
METRIC = "precision@20"


def family(name):
    return "BPR-MF" if name == "BPR-MF" else "CDL"


def run_config(ctx, name, split, point, seed):
    """The run of trained row ``name`` at ``point`` = (learning rate, λ) and training ``seed``."""
    from tfvrec import config as config_lib
    lr_key, l2_key = GRID_KEYS[family(name)]
    sets = ["data.source=directory", f"data.path={split}", "eval.baselines=[]", f"trainer.epochs={ctx.opt('epochs')}",
            f"eval.repeats={ctx.opt('repeats')}", "trainer.verbose=2", f"runtime.seed={seed}"]
    if ctx.quick:
        sets += quick_sets(steps=2, validation_users=0) + [f"eval.repeats={ctx.opt('repeats')}"]
    point_sets = [f"{lr_key}={point[0]}", f"{l2_key}={point[1]}"]
    if name == "BPR-MF":  # the `bpr` baseline's own run (its trainer settings), on the CDL-CE run's data and rule
        from tfvrec.models.bpr import baselines as bpr_baselines
        config = bpr_baselines.baseline_config(ctx.config(CONFIG, sets))
        for assignment in point_sets + (quick_sets(steps=2, validation_users=0) if ctx.quick else []):
            config_lib.override(config, config_lib.parse_set(assignment), source="grid")
    else:
        config = ctx.config(CONFIG, sets + VARIANTS[name] + point_sets)
    config.runtime.model_dir = ctx.run_dir(keyed(f"{name}-lr{point[0]:g}-l2{point[1]:g}-s{seed}", sets + point_sets))
    return config


def tune(ctx, name, split):
    """``(chosen point, {point: holdout figure}, {point: run})``: the row's grid, seed 0, edges widened."""
    grid = ctx.opt("grids").get(family(name)) or GRIDS[family(name)]
    points = [(lr, l2) for lr in grid["lr"] for l2 in grid["l2"]]
    scores, runs = {}, {}
    for step in range(ctx.opt("widen") + 1):
        for point in points:
            runs[point] = ctx.trained(run_config(ctx, name, split, point, 0))
            scores[point] = runs[point].state.best_value
            metric = runs[point].config.trainer.validation_metric
            ctx.log(f"grid {name}: lr {point[0]:g}, λ {point[1]:g}: holdout {metric} {scores[point]:.4f} "
                    f"({runs[point].epochs} epochs)")
        points = [p for p in widened(grid, scores) if p not in scores] if step < ctx.opt("widen") else []
        if not points:
            break
    return max(scores, key=scores.get), scores, runs


def time_shipped(ctx):
    """Wall clock of ``tfvrec train --config configs/cdl_posters.yaml`` as shipped (its own last-day split),
    trained afresh in a child process: ``(seconds, load average at the start)``."""
    import shutil
    model_dir = ctx.run_dir("shipped")
    shutil.rmtree(model_dir, ignore_errors=True)
    command = [sys.executable, "-m", "tfvrec", "train", "--config", os.path.join(REPO, "configs", CONFIG),
               "--set", f"runtime.model_dir={model_dir}", "--set", f"data.cache_dir={ctx.cache_dir}",
               "--set", "trainer.verbose=2"]
    load, start = os.getloadavg()[0], time.time()
    subprocess.run(command, cwd=REPO, check=True)
    return time.time() - start, load


BASELINES = (("Borda (EfficientNet-Lite0 features)", "borda_features"), ("Borda (colour histogram)", "borda_colour"),
             ("popularity", "popularity"), ("random", "random"))


def quality(ctx, runs):
    """``{row: [EvalResult per seed]}`` on the hidden favourites; ``runs``: {row: [Trained per seed]}."""
    from tfvrec.evaluation import evaluator
    from tfvrec import registry
    factories = registry.load_baselines([key for _, key in BASELINES])
    per_seed = {}
    for seed in range(ctx.opt("seeds")):
        scorers, dataset = {}, None
        for name, trained in runs.items():
            config, dataset, model = trained[seed].load(dataset=dataset)
            scorers[name] = model
        config = runs["CDL-CE"][seed].config
        heldout = evaluator.heldout_by_user(dataset.split("test"))
        for label, key in BASELINES:
            start = time.time()
            scorers[label] = factories[key](dataset, config, heldout)
            ctx.log(f"seed {seed}: {label} ready in {time.time() - start:.0f}s")
        # the same candidate draws for every seed (seed 0): the spread is the training seeds'
        rows = evaluator.evaluate_scorers(scorers, dataset, heldout, ["candidates:100"], KS, ctx.opt("repeats"),
                                          seed=0, judged="test")
        for name, result in rows:
            per_seed.setdefault(name, []).append(result)
    return per_seed


def quality_table(per_seed):
    from tfvrec.evaluation import significance
    reference = per_user_mean(per_seed["CDL-CE"], METRIC)
    header = ("| method | " + " | ".join(f"P@{k}" for k in KS) + " | " + " | ".join(f"R@{k}" for k in KS)
              + " | p (P@20 vs CDL-CE) |")
    lines = [header, "|" + "---|" * (2 + 2 * len(KS))]
    for name, results in per_seed.items():
        cells = [mean_std([r.metrics[f"{m}@{k}"] for r in results]) for m in ("precision", "recall") for k in KS]
        if name == "CDL-CE":
            p = "(reference)"
        else:
            test = significance.paired_test(reference, per_user_mean(results, METRIC))
            p = f"{significance.format_p(test.p_value)} ({test.mean_difference:+.4f})"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {p} |")
    return "\n".join(lines), per_seed["CDL-CE"][0].num_users


def per_seed_line(per_seed):
    return "; ".join(f"{name} " + ", ".join(f"{r.metrics[METRIC]:.4f}" for r in results)
                     for name, results in per_seed.items() if len(results) > 1 and name not in
                     ("Borda (EfficientNet-Lite0 features)", "Borda (colour histogram)", "popularity"))


def grid_line(name, chosen, scores):
    return (f"{name}: " + ", ".join(f"({lr:g}, {l2:g}) → {v:.4f}" for (lr, l2), v in sorted(scores.items()))
            + f" — **chosen lr {chosen[0]:g}, λ {chosen[1]:g}**")


def throughput(ctx):
    """Train steps per second of the CPU tower and of the paper's tower, on random pixels."""
    import tensorflow as tf
    from tfvrec.models.cdl import model as cdl
    out = []
    from tfvrec import config as config_lib
    cpu = ctx.config(CONFIG).model.cdl
    paper = config_lib.get_experiment("cdl_paper").model.cdl
    for label, c, batch, steps in (("CPU tower (96 px, d = 128)", cpu, ctx.opt("cpu_batch"), ctx.opt("cpu_steps")),
                                   ("paper tower (256 px, AlexNet widths, d = 1024)", paper, ctx.opt("paper_batch"),
                                    ctx.opt("paper_steps"))):
        model = cdl.CDL(c, np.random.default_rng(0).random((8, c.num_clusters)).astype(np.float32),
                        np.zeros((2, c.image_size, c.image_size, 3), np.uint8))
        model.compile(optimizer=tf.keras.optimizers.SGD(1e-3, momentum=0.9))
        shape = [batch, c.image_size, c.image_size, 3]
        x = {"user": tf.zeros([batch], tf.int64), "positive_image": tf.random.uniform(shape),
             "negative_image": tf.random.uniform(shape)}
        step = tf.function(model.train_step)
        step(x)
        load, start = os.getloadavg()[0], time.time()
        for _ in range(steps):
            step(x)
        seconds = (time.time() - start) / steps
        out.append(f"| {label} | {batch} | {model.triple.count_params():,} | {seconds:.2f} | {batch / seconds:.1f} | "
                   f"{2 * batch / seconds:.1f} | {load:.2f} |")
        ctx.log(out[-1])
    return out


def run(ctx):
    base = base_config(ctx)
    split = paper_split(ctx, base)
    names = list(ctx.opt("variants")) + ["BPR-MF"]
    runs, tuning = {}, {}
    for name in names:
        chosen, scores, grid_runs = tune(ctx, name, split)
        tuning[name] = (chosen, scores)
        runs[name] = [grid_runs[chosen]] + [ctx.trained(run_config(ctx, name, split, chosen, seed))
                                            for seed in range(1, ctx.opt("seeds"))]
    shipped = time_shipped(ctx) if ctx.opt("time_shipped") else None
    per_seed = quality(ctx, runs)
    table, users = quality_table(per_seed)
    speed = throughput(ctx)
    epochs, repeats, seeds = ctx.opt("epochs"), ctx.opt("repeats"), ctx.opt("seeds")
    ce = runs["CDL-CE"][0]
    timing = (f"{ce.train_seconds / 60:.1f} min of training for the CDL-CE row (seed 0 at its chosen point on the "
              f"paper split: {epochs}-epoch budget, {ce.epochs} trained, early stopping on a train holdout)")
    if shipped is not None:
        timing += (f"; the shipped command as is (`tfvrec train --config configs/cdl_posters.yaml`, its own "
                   f"last-day split, data set import cached): {shipped[0] / 60:.1f} min wall clock at load average "
                   f"{shipped[1]:.2f}")
    others = ", ".join(f"{n} {t[0].train_seconds / 60:.1f} min" for n, t in runs.items() if n != "CDL-CE")
    hidden, low, high = ctx.opt("hidden"), ctx.opt("min_likes"), ctx.opt("max_likes")
    grids = "; ".join(grid_line(name, *tuning[name]) for name in names)
    shipped_point = (ctx.config(CONFIG).trainer.learning_rate, ctx.config(CONFIG).trainer.weight_decay)
    holds = "holds" if np.allclose(shipped_point, tuning["CDL-CE"][0]) else "does **not** hold"
    return f"""## CDL on MovieLens posters (Lei et al. §6 protocol)

Likes = ratings ≥ 4 on movies with a poster; the {users} users with {low}–{high} likes hide {hidden} each (`tfvrec
cdl-split`), ranked among 100 candidates (`candidates:100`; random P@K = {hidden}/100, R@K = K/100). Trained rows:
mean ± std over {seeds} training seeds, each seed's figure a mean over {repeats} draws of the candidates (the same
draws for every seed); p: two-sided paired t-test over users of CDL-CE against the row on per-user P@20 averaged
over the seeds (mean difference CDL-CE − row in brackets). CDL rows: `configs/cdl_posters.yaml` (CPU tower at 96
px, Adam, no dropout, {epochs} epochs at most, best epoch on a train holdout); TwoNets the same towers trained
pointwise on the same triplets (p = σ(b − D)); CDL-pretrained trainable FC layers (512 → 128) on frozen
EfficientNet-Lite0 features; BPR-MF the `bpr` baseline's run (the BPR experiment's trainer: lazy Adam, its own epoch
budget) on the same data, holdout and early-stopping rule. No friends or groups in this data: negatives avoid the
user's likes and interest tags (genres + MovieLens tags). Popularity counts
training likes; the Borda rows and popularity learn nothing (no seeds).

{table}

Per seed, P@20: {per_seed_line(per_seed)}.

Grids (every trained row, seed 0, holdout R@20 under candidates:100, up to {ctx.opt('widen')} widening(s) of an edge
holding the winner): {grids}. configs/cdl_posters.yaml (lr {shipped_point[0]:g}, weight decay {shipped_point[1]:g})
{holds} CDL-CE's chosen point; the table's rows are the chosen points.

Training time: {timing}.{(' Other rows (seed 0): ' + others + '.') if others else ''}

Training throughput (one `train_step` on random pixels, SGD with momentum; 2 images per triplet):

| tower | batch | parameters | s/step | triplets/s | images/s | load average |
|---|---|---|---|---|---|---|
{chr(10).join(speed)}
"""


SECTIONS = [Section(
    name="cdl-posters", title="CDL on MovieLens posters (the paper's 20-of-100 protocol) against its baselines",
    run=run, data=("movielens_posters",), make="bench-cdl",
    paths=P.TRAINING + P.EVALUATION + P.model("cdl") + P.model("bpr") + P.FEATURES + P.config(CONFIG)
    + ("tools/bench_cnn_permlp.py", "tools/bench_new_items.py"),  # helpers it imports
    options={"epochs": 10, "repeats": 5, "seeds": 3, "grids": {}, "widen": 1, "variants": list(VARIANTS),
             "min_likes": 40, "max_likes": 200, "hidden": 20, "time_shipped": False, "cpu_batch": 128,
             "cpu_steps": 10, "paper_batch": 16, "paper_steps": 3},
    quick={"epochs": 1, "repeats": 1, "seeds": 2, "widen": 0, "variants": ["CDL-CE", "CDL-pretrained"],
           "grids": {"CDL": {"lr": [1e-3], "l2": [0.0]}, "BPR-MF": {"lr": [3e-3], "l2": [1e-5]}},
           "min_likes": 6, "hidden": 3, "cpu_batch": 8, "cpu_steps": 1, "paper_batch": 2, "paper_steps": 1})]
