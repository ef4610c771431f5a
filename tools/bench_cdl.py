"""Section ``cdl-posters``: CDL (Lei et al., CVPR 2016) on MovieLens posters, the paper's §6 protocol.

* the P@K / R@K table (K = 1, 5, 10, 20) of CDL-CE, CDL-hinge, CDL with the frozen
  EfficientNet-Lite0 backbone, TwoNets, CDL with tfrs' retrieval loss, Borda count over pretrained
  CNN features, Borda count over colour histograms, BPR-MF and random, with mean ± std over repeats of
  the candidate sampling and a per-user paired t-test of CDL-CE against every other row;
* the training time of each trained row (its run's training time; with ``time_shipped``, also the wall
  clock of ``tfvrec train --config configs/cdl_posters.yaml`` as shipped, its own split);
* training throughput (triplets/s, images/s) of the CPU tower and of the paper's
  AlexNet-size tower (256 px, d = 1024).

The split is the paper's (§6): every user with 40–200 likes (ratings ≥ 4 on movies with
a poster) hides 20 of them (`tfvrec cdl-split`); each is ranked among 100 candidates
(``candidates:100``), so random ranking gives P@K = 0.2. Runs live in
``runs/bench_cdl/`` and are reused (or resumed) while the measured code is unchanged.

    python tools/bench.py --sections cdl-posters [--option epochs=4 --option repeats=3]
"""
import os
import subprocess
import sys
import time

import numpy as np

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


def run_config(ctx, name, split):
    sets = ["data.source=directory", f"data.path={split}", "eval.baselines=[]", f"trainer.epochs={ctx.opt('epochs')}",
            f"eval.repeats={ctx.opt('repeats')}", "trainer.verbose=2", *VARIANTS[name]]
    if ctx.quick:
        sets += quick_sets(steps=2, validation_users=0) + [f"eval.repeats={ctx.opt('repeats')}"]
    config = ctx.config(CONFIG, sets)
    config.runtime.model_dir = ctx.run_dir(keyed(name, sets))
    return config


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


def quality(ctx, trained):
    from tfvrec.evaluation import evaluator
    from tfvrec import registry
    scorers, configs = {}, {}
    for name, run in trained.items():
        config, dataset, model = run.load()
        scorers[name], configs[name] = model, config
    config = configs["CDL-CE"]
    test = dataset.split("test")
    heldout = evaluator.heldout_by_user(test)
    factories = registry.load_baselines(["borda_features", "borda_colour", "bpr", "random"])
    for label, key in (("Borda (EfficientNet-Lite0 features)", "borda_features"),
                       ("Borda (colour histogram)", "borda_colour"), ("BPR-MF", "bpr"), ("random", "random")):
        start = time.time()
        scorers[label] = factories[key](dataset, config, heldout)
        ctx.log(f"{label} ready in {time.time() - start:.0f}s")
    rows = evaluator.evaluate_scorers(scorers, dataset, heldout, ["candidates:100"], KS, ctx.opt("repeats"), seed=0,
                                      judged="test")
    header = ("| method | " + " | ".join(f"P@{k}" for k in KS) + " | " + " | ".join(f"R@{k}" for k in KS)
              + " | p (P@20 vs CDL-CE) |")
    lines = [header, "|" + "---|" * (2 + 2 * len(KS))]
    for name, result in rows:
        cells = [f"{result.metrics[f'{m}@{k}']:.4f} ± {result.std[f'{m}@{k}']:.4f}"
                 for m in ("precision", "recall") for k in KS]
        test_ = result.comparison.get("precision@20")
        p = "(reference)" if not test_ else f"{test_['p_value']:.2g} ({test_['mean_difference']:+.4f})"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {p} |")
    users = rows[0][1].num_users
    return "\n".join(lines), users, {name: result for name, result in rows}


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
    variants = ctx.opt("variants")
    trained = {name: ctx.trained(run_config(ctx, name, split)) for name in variants}
    shipped = time_shipped(ctx) if ctx.opt("time_shipped") else None
    table, users, results = quality(ctx, trained)
    speed = throughput(ctx)
    epochs, repeats = ctx.opt("epochs"), ctx.opt("repeats")
    ce = trained["CDL-CE"]
    timing = (f"{ce.train_seconds / 60:.1f} min of training for the CDL-CE row (`configs/cdl_posters.yaml` on the "
              f"paper split: {epochs}-epoch budget, {ce.epochs} trained, early stopping on a train holdout)")
    if shipped is not None:
        timing += (f"; the shipped command as is (`tfvrec train --config configs/cdl_posters.yaml`, its own "
                   f"last-day split, data set import cached): {shipped[0] / 60:.1f} min wall clock at load average "
                   f"{shipped[1]:.2f}")
    others = ", ".join(f"{n} {t.train_seconds / 60:.1f} min" for n, t in trained.items() if n != "CDL-CE")
    hidden, low, high = ctx.opt("hidden"), ctx.opt("min_likes"), ctx.opt("max_likes")
    return f"""## CDL on MovieLens posters (Lei et al. §6 protocol)

Likes = ratings ≥ 4 on movies with a poster; the {users} users with {low}–{high} likes hide {hidden} each (`tfvrec
cdl-split`), ranked among 100 candidates (`candidates:100`; random P@K = {hidden}/100, R@K = K/100). Mean ± std over
{repeats} repeats of the candidate sampling; p: two-sided per-user paired t-test of CDL-CE against the row on P@20 (mean
difference CDL-CE − row in brackets). CDL rows: the shipped `configs/cdl_posters.yaml` (CPU tower at 96 px, Adam, no
dropout, {epochs} epochs at most, best epoch on a train holdout); TwoNets the same towers trained pointwise on
the same triplets; CDL-pretrained trainable FC layers (512 → 128) on frozen EfficientNet-Lite0 features. No
friends or groups in this data: negatives avoid the user's likes and interest tags (genres + MovieLens tags).

{table}

Training time: {timing}.{(' Other rows: ' + others + '.') if others else ''}

Training throughput (one `train_step` on random pixels, SGD with momentum; 2 images per triplet):

| tower | batch | parameters | s/step | triplets/s | images/s | load average |
|---|---|---|---|---|---|---|
{chr(10).join(speed)}
"""


SECTIONS = [Section(
    name="cdl-posters", title="CDL on MovieLens posters (the paper's 20-of-100 protocol) against its baselines",
    run=run, data=("movielens_posters",), make="bench-cdl",
    paths=P.TRAINING + P.EVALUATION + P.model("cdl") + P.model("bpr") + P.FEATURES + P.config(CONFIG),
    options={"epochs": 10, "repeats": 5, "variants": list(VARIANTS), "min_likes": 40, "max_likes": 200, "hidden": 20,
             "time_shipped": False, "cpu_batch": 128, "cpu_steps": 10, "paper_batch": 16, "paper_steps": 3},
    quick={"epochs": 1, "repeats": 1, "variants": ["CDL-CE", "CDL-pretrained"], "min_likes": 6, "hidden": 3,
           "cpu_batch": 8, "cpu_steps": 1, "paper_batch": 2, "paper_steps": 1})]
