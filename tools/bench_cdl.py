"""Benchmark: CDL (Lei et al., CVPR 2016) on MovieLens posters, the paper's §6 protocol.

One command (``make bench-cdl``) produces:

* the P@K / R@K table (K = 1, 5, 10, 20) of CDL-CE, CDL-hinge, CDL with the frozen
  EfficientNet-Lite0 backbone, TwoNets, Borda count over pretrained CNN features, Borda
  count over colour histograms, BPR-MF and random, with mean ± std over repeats of the
  candidate sampling and a per-user paired t-test of CDL-CE against every other row;
* the wall-clock time of ``tfvrec train --config configs/cdl_posters.yaml`` (the CDL-CE row:
  the shipped config on the paper's split) on this machine;
* training throughput (triplets/s, images/s) of the CPU tower and of the paper's
  AlexNet-size tower (256 px, d = 1024).

The split is the paper's (§6): every user with 40–200 likes (ratings ≥ 4 on movies with
a poster) hides 20 of them (`tfvrec cdl-split`); each is ranked among 100 candidates
(``candidates:100``), so random ranking gives P@K = 0.2. Runs live in
``runs/bench_cdl/`` and are reused (or resumed) when the command is run again.

    .venv/bin/python tools/bench_cdl.py                  # everything, writes docs/benchmarks.md
    .venv/bin/python tools/bench_cdl.py --epochs 4 --repeats 3 --dry-run
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import tfvrec  # noqa: E402,F401

from tfvrec import benchmark_report  # noqa: E402
from tfvrec import config as config_lib  # noqa: E402
from tfvrec.runs import Run  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(REPO, "runs", "bench_cdl")
CONFIG = os.path.join(REPO, "configs", "cdl_posters.yaml")
KS = (1, 5, 10, 20)
UNDER_LOAD = 2.5
VARIANTS = {  # row -> overrides of configs/cdl_posters.yaml
    "CDL-CE": [],
    "CDL-hinge": ["model.cdl.loss=hinge"],
    "CDL-pretrained": ["model.cdl.backbone=efficientnet_lite0", "model.cdl.fc_units=[512]", "model.cdl.augment=false"],
    "TwoNets": ["model.cdl.loss=pointwise"],
    "CDL-retrieval": ["model.cdl.loss=retrieval"],  # tfrs' softmax over −D (issue: the retrieval objective)
}


def load_average():
    return os.getloadavg()[0]


def paper_split(base):
    from tfvrec.data.resolve import dataset_path
    from tfvrec.models.cdl.protocol import write_paper_split
    out = os.path.join(RUNS, "posters_paper_split")
    if not os.path.isdir(out):
        _, users = write_paper_split(dataset_path(base.data), out, min_likes=40, max_likes=200, hidden=20, seed=0)
        print(f"paper split: {users} users hide 20 likes each -> {out}", flush=True)
    return out


def run_sets(name, split, args):
    return ["data.source=directory", f"data.path={split}", f"data.cache_dir={os.path.join(REPO, 'data_cache')}",
            f"runtime.model_dir={os.path.join(RUNS, name)}", "eval.baselines=[]", f"trainer.epochs={args.epochs}",
            f"eval.repeats={args.repeats}", "trainer.verbose=2", *VARIANTS[name]]


TIMINGS = os.path.join(RUNS, "timings.json")  # wall clock of every fresh run, kept for reused ones


def _timings():
    return json.load(open(TIMINGS)) if os.path.exists(TIMINGS) else {}


def _record(name, seconds, load):
    timings = _timings()
    timings[name] = [seconds, load]
    with open(TIMINGS + ".tmp", "w") as f:
        json.dump(timings, f, indent=1)
    os.replace(TIMINGS + ".tmp", TIMINGS)


def train(name, split, args, sets=None, key=None):
    """Train (or reuse) one row's run with ``tfvrec train``; returns (seconds, load at start), recorded
    when the run was trained (by this or an earlier invocation), else (None, None)."""
    key = key or name
    model_dir = os.path.join(RUNS, key)
    if Run(model_dir).finished:
        return tuple(_timings().get(key, (None, None)))
    command = [sys.executable, "-m", "tfvrec", "train", "--config", CONFIG]
    for s in (run_sets(name, split, args) if sets is None else sets):
        command += ["--set", s]
    load, start = load_average(), time.time()
    print(f"[{key}] {' '.join(command[2:])}", flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    _record(key, time.time() - start, load)
    return time.time() - start, load


def quality(split, args, timings):
    from tfvrec.evaluation import evaluator
    from tfvrec import registry
    scorers, configs = {}, {}
    for name in VARIANTS:
        config, dataset, model = Run(os.path.join(RUNS, name)).load()
        scorers[name], configs[name] = model, config
    config = configs["CDL-CE"]
    test = dataset.split("test")
    heldout = evaluator.heldout_by_user(test)
    factories = registry.load_baselines(["borda_features", "borda_colour", "bpr", "random"])
    for label, key in (("Borda (EfficientNet-Lite0 features)", "borda_features"),
                       ("Borda (colour histogram)", "borda_colour"), ("BPR-MF", "bpr"), ("random", "random")):
        start = time.time()
        scorers[label] = factories[key](dataset, config, heldout)
        print(f"[{label}] ready in {time.time() - start:.0f}s", flush=True)
    rows = evaluator.evaluate_scorers(scorers, dataset, heldout, ["candidates:100"], KS, args.repeats, seed=0,
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


def throughput(args):
    """Train steps per second of the CPU tower and of the paper's tower, on random pixels."""
    import tensorflow as tf
    from tfvrec.models.cdl import model as cdl
    out = []
    cpu = config_lib.load_config(CONFIG).model.cdl
    paper = config_lib.get_experiment("cdl_paper").model.cdl
    for label, c, batch, steps in (("CPU tower (96 px, d = 128)", cpu, 128, 10),
                                   ("paper tower (256 px, AlexNet widths, d = 1024)", paper, args.paper_batch, 3)):
        model = cdl.CDL(c, np.random.default_rng(0).random((8, c.num_clusters)).astype(np.float32),
                        np.zeros((2, c.image_size, c.image_size, 3), np.uint8))
        model.compile(optimizer=tf.keras.optimizers.SGD(1e-3, momentum=0.9))
        shape = [batch, c.image_size, c.image_size, 3]
        x = {"user": tf.zeros([batch], tf.int64), "positive_image": tf.random.uniform(shape),
             "negative_image": tf.random.uniform(shape)}
        step = tf.function(model.train_step)
        step(x)
        load, start = load_average(), time.time()
        for _ in range(steps):
            step(x)
        seconds = (time.time() - start) / steps
        tag = " (under load)" if load > UNDER_LOAD else ""
        out.append(f"| {label} | {batch} | {model.triple.count_params():,} | {seconds:.2f} | {batch / seconds:.1f} | "
                   f"{2 * batch / seconds:.1f} | {load:.2f}{tag} |")
        print(out[-1], flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every trained row (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the candidate sampling (default 5)")
    parser.add_argument("--paper-batch", type=int, default=16, help="batch of the paper-tower throughput steps")
    parser.add_argument("--time-shipped", action="store_true",
                        help="also time `tfvrec train --config configs/cdl_posters.yaml` as shipped (its own split)")
    parser.add_argument("--dry-run", action="store_true", help="print the section, do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    os.makedirs(RUNS, exist_ok=True)
    base = config_lib.load_config(CONFIG)
    split = paper_split(base)
    timings = {}
    for name in VARIANTS:
        timings[name] = train(name, split, args)
    shipped = tuple(_timings().get("shipped", (None, None)))
    if args.time_shipped:
        shipped = train("CDL-CE", split, args, sets=[f"runtime.model_dir={os.path.join(RUNS, 'shipped')}",
                                                      "trainer.verbose=2"], key="shipped")
    table, users, results = quality(split, args, timings)
    speed = throughput(args)
    seconds, load = timings["CDL-CE"]
    if seconds is None:
        timing = "(the CDL-CE run was reused and its time was not recorded)"
    else:
        tag = " — under load" if load > UNDER_LOAD else ""
        timing = (f"{seconds / 60:.1f} min wall clock for `tfvrec train --config configs/cdl_posters.yaml` on the "
                  f"paper split ({args.epochs}-epoch budget, early stopping on a train holdout, final evaluation "
                  f"included; load average {load:.2f} at the start{tag})")
    if shipped[0] is not None:
        tag = " — under load" if shipped[1] > UNDER_LOAD else ""
        timing += (f"; the shipped command as is (its own last-day split, data set import cached): "
                   f"{shipped[0] / 60:.1f} min at load average {shipped[1]:.2f}{tag}")
    others = ", ".join(f"{n} {t[0] / 60:.1f} min" for n, t in timings.items() if n != "CDL-CE" and t[0])
    markdown = f"""## CDL on MovieLens posters (Lei et al. §6 protocol)

`make bench-cdl` (`tools/bench_cdl.py --epochs {args.epochs} --repeats {args.repeats}`). Likes = ratings ≥ 4 on
movies with a poster; the {users} users with 40–200 likes hide 20 each (`tfvrec cdl-split`), ranked among
100 candidates (`candidates:100`; random P@K = 0.2, R@K = K/100). Mean ± std over {args.repeats} repeats of the
candidate sampling; p: two-sided per-user paired t-test of CDL-CE against the row on P@20 (mean difference
CDL-CE − row in brackets). CDL rows: the shipped `configs/cdl_posters.yaml` (CPU tower at 96 px, Adam, no
dropout, {args.epochs} epochs at most, best epoch on a train holdout); TwoNets the same towers trained pointwise on
the same triplets; CDL-pretrained trainable FC layers (512 → 128) on frozen EfficientNet-Lite0 features. No
friends or groups in this data: negatives avoid the user's likes and interest tags (genres + MovieLens tags).

{table}

Training time: {timing}.{(' Other rows: ' + others + '.') if others else ''}

Training throughput (one `train_step` on random pixels, SGD with momentum; 2 images per triplet):

| tower | batch | parameters | s/step | triplets/s | images/s | load average |
|---|---|---|---|---|---|---|
{chr(10).join(speed)}
"""
    benchmark_report.publish("cdl-posters", markdown, write=not args.dry_run)


if __name__ == "__main__":
    main()
