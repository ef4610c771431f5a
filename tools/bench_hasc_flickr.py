"""Benchmark: HASC (Wu et al.) on Flickr F.S — the paper's Table 3 ablations, a tuning grid, speed, retrieval.

One command, one run of everything the comparison needs (every row evaluated with the
same seed, so all models see the same sampled negatives):

1. BPR-MF at every embedding size the grid uses, trained with HASC's own trainer settings
   (batch 512, lr 0.001, 5 negatives: what ``tfvrec train`` does for ``bpr_init``) — HASC's
   P, W initialisation — plus the tuned BPR recipe of ``configs/bpr_flickr_fs_retrieval.yaml`` at the
   selected D and at 64, as baselines;
2. the tuning grid: coordinate search over λ, D, attention width, learning rate, its per-epoch
   decay and the initialisation of Q, X (each point trained ``--grid-epochs`` epochs, early stopping),
   selected on the holdout carved from likes_train.tsv (all 4,418 users: at the trainer's
   default 2,000 the holdout HR@5 has a standard error of 0.011, larger than most grid
   differences) — never on likes_val.tsv;
3. the winner trained to convergence, and the ablations U, S, C, U+S+C × AVG / ATT
   with the winner's hyperparameters;
4. the table: HR@5, NDCG@5 at N = 100 and N = 1000 sampled negatives, 10 repeats, on
   likes_val.tsv; the acceptance checks; epoch time; the recall of two-stage retrieval
   against exact full scoring.

    .venv/bin/python tools/bench_hasc_flickr.py [--grid-epochs 8] [--no_report]

Finished runs under ``runs/bench_hasc_flickr/`` are reused (delete them to retrain).
Needs $TFVREC_SHARED_DATA/flickr_fs (default ../shared/data; not part of this repository).
"""
import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import tfvrec  # noqa: E402,F401

from tfvrec import benchmark_report  # noqa: E402
from tfvrec import config as config_lib  # noqa: E402
from tfvrec import inputs, runs  # noqa: E402
from tfvrec.data.resolve import shared_data_dir  # noqa: E402
from tfvrec.evaluation.protocols import EvalResult  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(REPO, "runs", "bench_hasc_flickr")
HASC_CONFIG = os.path.join(REPO, "configs", "hasc_flickr_fs.yaml")
BPR_CONFIG = os.path.join(REPO, "configs", "bpr_flickr_fs_retrieval.yaml")
EVAL = ["eval.split=validation", "eval.protocols=[sampled:100, sampled:1000]", "eval.ks=[5, 10]",
        "eval.repeats=10", "eval.seed=0", "eval.baselines=[]", "trainer.verbose=2"]
# Coordinate search: each stage tries its values with the best of the previous stages.
PAPER_POINT = {"embedding_dim": 15, "l2": 0.01, "attention_dim": 20, "learning_rate": 0.001,
               "learning_rate_decay": 1.0, "auxiliary_init": "random"}
TRAINER_KEYS = ("learning_rate", "learning_rate_decay")
# The search starts from the paper's point with the λ and Q/X initialisation the probes in
# docs/models/hasc.md found (the paper's λ = 0.01 erases the BPR initialisation).
START_POINT = dict(PAPER_POINT, l2=1e-5, auxiliary_init="bpr")
# λ goes first: the paper's 0.01 is 1000x the λ of the BPR-MF that initialises P and W,
# and at that strength the BPR factors shrink away in the first epochs (a probe at the
# paper's point fell from holdout HR@5 0.379 to 0.370 in two epochs).
GRID = [("l2", [1e-5, 1e-4, 0.001, 0.01]), ("embedding_dim", [10, 15, 20, 30]), ("attention_dim", [20, 64]),
        ("learning_rate", [0.0005, 0.001, 0.002]),
        # At D = 30 the holdout peaked within 4-7 epochs and then flattened at a constant rate (docs/models/hasc.md).
        ("learning_rate_decay", [1.0, 0.8]), ("auxiliary_init", ["random", "bpr"])]
PAPER = {"BPR": 0.349, "HASC Base+Auxil": 0.3869}  # HR@5, F.S (Wu et al. Table 4; BPR from the 12.93% gain)
ABLATIONS = [("U", ["upload"], "avg"), ("U", ["upload"], "att"), ("S", ["social"], "avg"),
             ("S", ["social"], "att"), ("C", ["creator"], "att"), ("U+S+C", ["upload", "social", "creator"], "avg"),
             ("U+S+C", ["upload", "social", "creator"], "att")]
# Wu et al. Table 3, F.S: relative HR@5 gain over BPR.
PAPER_GAIN = {("U", "avg"): 5.85, ("U", "att"): 10.21, ("S", "avg"): 4.23, ("S", "att"): 7.60, ("C", "att"): 4.70,
              ("U+S+C", "avg"): 6.44, ("U+S+C", "att"): 12.93}


def log(message):
    print(f"[bench_hasc] {message}", flush=True)


# ----------------------------------------------------------------------------- runs

class Run:
    """One training run of the benchmark: trained once, then read back from its directory."""

    def __init__(self, name, config_path, sets):
        self.name, self.config_path, self.sets = name, config_path, list(sets)
        digest = hashlib.sha256(json.dumps([os.path.basename(config_path)] + self.sets).encode()).hexdigest()[:8]
        self.model_dir = os.path.join(RUNS, f"{name}-{digest}")

    def config(self):
        return config_lib.load_config(self.config_path, self.sets + EVAL + [f"runtime.model_dir={self.model_dir}"])

    def state(self):
        """The run's ``training_state.json`` (epochs done, best epoch), {} before training."""
        path = os.path.join(self.model_dir, "training_state.json")
        return json.load(open(path)) if os.path.exists(path) else {}

    def results(self):
        """``{protocol: EvalResult}``, training (or finishing) the run first if needed."""
        metrics = os.path.join(self.model_dir, "metrics.json")
        from tfvrec.training import trainer
        if not (runs.Run(self.model_dir).finished and os.path.exists(metrics)):
            log(f"training {self.name} in {self.model_dir}")
            trainer.train(self.config())
        payload = json.load(open(metrics))
        own = [r for r, row in zip(payload["results"], payload["rows"]) if row == payload["model"]]
        return {r["protocol"]: EvalResult.from_dict(r) for r in own}

    def epoch_seconds(self):
        state = self.state()
        return state.get("train_seconds", float("nan")) / max(1, state.get("completed_epochs", 1))


def bpr_run(dim):
    """BPR-MF with the tuned recipe of configs/bpr_flickr_fs_retrieval.yaml (batch 1024, lr 0.002, 1 negative)."""
    return Run(f"bpr_d{dim}", BPR_CONFIG, [f"model.bpr.embedding_dim={dim}"])


def init_run(dim):
    """HASC's P, W initialisation: BPR-MF trained with HASC's trainer settings, as ``tfvrec train``
    trains ``bpr_init``. (Initialised from the tuned recipe instead, HASC at the start point stalled
    at holdout HR@5 0.378 over 8 epochs, +3% over its init; from this one it climbs to 0.395.)"""
    hasc = config_lib.load_config(HASC_CONFIG).trainer
    return Run(f"bpr_init_d{dim}", BPR_CONFIG, [
        f"model.bpr.embedding_dim={dim}", f"trainer.batch_size={hasc.batch_size}",
        f"trainer.learning_rate={hasc.learning_rate}", f"trainer.negatives_per_positive={hasc.negatives_per_positive}"])


def hasc_run(name, point, epochs, extra=()):
    """A HASC run at grid ``point``, P and W from the BPR-MF init run of the same D."""
    bpr = init_run(point["embedding_dim"])
    bpr.results()  # trains it if needed
    sets = [f"model.hasc.{key}={value}" for key, value in point.items() if key not in TRAINER_KEYS]
    if point["learning_rate_decay"] != 1.0:  # (only when set, so the names of earlier runs stay valid)
        sets.append(f"trainer.learning_rate_decay={point['learning_rate_decay']}")
    sets += [f"trainer.learning_rate={point['learning_rate']}", f"trainer.epochs={epochs}",
             "trainer.validation_max_users=0", f"model.hasc.bpr_run={bpr.model_dir}", *extra]
    return Run(name, HASC_CONFIG, sets)


def point_label(point):
    decay = "" if point["learning_rate_decay"] == 1.0 else f"×{point['learning_rate_decay']:g}^epoch"
    return (f"D={point['embedding_dim']}, λ={point['l2']:g}, att={point['attention_dim']}, "
            f"lr={point['learning_rate']:g}{decay}, Q/X init={point['auxiliary_init']}")


# ----------------------------------------------------------------------------- stages

def tune(grid_epochs):
    """Coordinate search; returns (best point, rows for the grid table)."""
    best = dict(START_POINT)
    rows, seen = [], {}
    for key, values in GRID:
        scores = {}
        for value in values:
            point = dict(best, **{key: value})
            label = point_label(point)
            if label not in seen:
                run = hasc_run("grid", point, grid_epochs)
                results = run.results()
                state = run.state()
                seen[label] = (state["best_value"], results["sampled:100"].metrics["hr@5"], state["best_epoch"])
                rows.append((key, label) + seen[label])
            scores[value] = seen[label][0]
        best[key] = max(values, key=lambda v: scores[v])
        log(f"grid stage {key}: {scores} -> {best[key]}")
    return best, rows


def cell(result, metric):
    return f"{result.metrics[metric]:.4f} ± {result.std[metric]:.4f}"


def two_stage(run, sizes=(50, 100, 200, 500, 1000), k=10):
    from tfvrec.models.hasc.retrieval import two_stage_recall
    config, dataset, model = runs.Run(run.model_dir).load()
    exclude = dataset.train_items_by_user()
    users = np.arange(dataset.num_users)
    out = []
    for n in sizes:
        start = time.time()
        out.append((n, two_stage_recall(config, dataset, model, users, k=k, num_retrieve=n, exclude=exclude),
                    (time.time() - start) / len(users) * 1000))
    return out


def time_epoch(run, steps=300):
    """Steps/s of HASC training over the full training set at the run's settings (no validation)."""
    import tensorflow as tf
    from tfvrec.training import trainer
    config = run.config()
    # Timing needs no trained initialisation (the step costs the same from any starting values).
    config.model.hasc.init_from_bpr = False
    config.model.hasc.auxiliary_init = "random"
    dataset = runs.prepare_dataset(config)
    model = trainer.build_model(config, dataset, tf.distribute.get_strategy())
    ds, steps_per_epoch = inputs.training_stream(config, dataset, model, 0)
    model.fit(ds, steps_per_epoch=20, epochs=1, verbose=0)  # trace and warm up
    load = os.getloadavg()[0]
    wall, cpu = time.time(), time.process_time()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    wall, cpu = (time.time() - wall) / steps, (time.process_time() - cpu) / steps
    return {"steps_per_epoch": steps_per_epoch, "ms_per_step": wall * 1000, "cpu_ms_per_step": cpu * 1000,
            "epoch_minutes": wall * steps_per_epoch / 60, "load_before": load, "load_after": os.getloadavg()[0],
            "likes": len(dataset.split("train")), "negatives": config.trainer.negatives_per_positive,
            "batch": config.trainer.batch_size}


# ----------------------------------------------------------------------------- the shipped config

def shipped(args):
    """``tfvrec train --config configs/hasc_flickr_fs.yaml`` (trained or reused in --shipped-run), its
    BPR-MF init and the tuned BPR-MF (make bench-bpr's run, when present) evaluated in one table."""
    from tfvrec.evaluation import evaluator, report
    from tfvrec.training import trainer
    run = args.shipped_run
    config = config_lib.load_config(HASC_CONFIG, [f"runtime.model_dir={run}", "trainer.verbose=2"])
    if not runs.Run(run).finished:
        log(f"training the shipped config into {run}")
        trainer.train(config)
    state = json.load(open(os.path.join(run, "training_state.json")))
    _, dataset, hasc = runs.Run(run).load()
    scorers = {"HASC U+S+C ATT (configs/hasc_flickr_fs.yaml)": hasc,
               f"BPR-MF D={config.model.hasc.embedding_dim} (its init)": runs.Run(
                   os.path.join(run, "bpr_init")).load()[2]}
    tuned = os.path.join(REPO, "runs", "bench_bpr_flickr_fs")
    if runs.Run(tuned).finished:
        scorers["BPR-MF D=64 (make bench-bpr)"] = runs.Run(tuned).load()[2]
    scorers.update(evaluator.baseline_scorers(["popularity"], dataset, config, None))
    heldout = evaluator.heldout_by_user(dataset.split("validation"))
    rows = evaluator.evaluate_scorers(scorers, dataset, heldout, ["sampled:100", "sampled:1000"], [5, 10], 10, 0,
                                      judged="validation")
    table = report.format_table([r for _, r in rows], row_labels=[n for n, _ in rows],
                                metrics=["hr@5", "ndcg@5", "hr@10"])
    first = rows[0][1].metrics["hr@5"]
    gains = [f"{name}: {100 * (first / r.metrics['hr@5'] - 1):+.1f}%" for name, r in rows[1:]
             if r.protocol == "sampled:100" and name.startswith("BPR")]
    lines = ["## HASC on Flickr F.S: the shipped config, re-measured",
             "",
             "Command: `.venv/bin/python tools/bench_hasc_flickr.py --shipped` — `tfvrec train --config "
             "configs/hasc_flickr_fs.yaml` (the grid's selected point at D = 64 on the shipped BPR-MF recipe; see "
             "peers_bpr), its BPR-MF init and the tuned "
             "BPR-MF evaluated in one table on `likes_val.tsv`, with the corrected exclusions (a held-out "
             "training like is never drawn as a negative; validation never knows later splits). Trained "
             f"{state['completed_epochs']} epochs, best epoch {state.get('best_epoch')} (holdout HR@5 "
             f"{state.get('best_value', float('nan')):.4f}).",
             "", table, "",
             f"HASC's HR@5 (N=100) over BPR-MF: {'; '.join(gains)}. Before the exclusion fix the grid's final run "
             "gave 0.4014 ± 0.0033 (table below). The paper's no-visual HASC (Base+Auxil) is 0.3869, its full "
             "HASC with visual features 0.3937 (F.S features were never published)."]
    benchmark_report.publish("hasc_flickr_fs_shipped", "\n".join(lines), write=not args.no_report)


# ----------------------------------------------------------------------------- report

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid-epochs", type=int, default=8,
                        help="epochs per grid point (default 8: the gain over BPR appears after 3-4 epochs)")
    parser.add_argument("--final-epochs", type=int, default=30, help="epoch cap of the final runs (early stopping)")
    parser.add_argument("--no_report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--shipped", action="store_true",
                        help="only the shipped config's run (and its BPR-MF rows), re-measured in one table")
    parser.add_argument("--shipped-run", default=os.path.join(REPO, "runs", "hasc_flickr_fs"),
                        help="run directory of the shipped config (trained there when missing)")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    flickr = os.path.join(shared_data_dir(), "flickr_fs")
    if not os.path.isdir(flickr):
        sys.exit(f"Flickr F.S not found at {flickr}; this benchmark needs the real data sets ($TFVREC_SHARED_DATA)")
    if args.shipped:
        return shipped(args)
    started, load_start = time.time(), os.getloadavg()[0]

    best, grid_rows = tune(args.grid_epochs)
    log(f"best point: {point_label(best)}")
    dim = best["embedding_dim"]
    table = [(f"BPR-MF (D={dim}, HASC's init: HASC's trainer settings)", None, init_run(dim)),
             (f"BPR-MF (D={dim}, tuned recipe of configs/bpr_flickr_fs_retrieval.yaml)", None, bpr_run(dim)),
             ("BPR-MF (D=64, tuned recipe)", None, bpr_run(64))]
    baselines = table[:3]
    for aspects_label, aspects, attention in ABLATIONS:
        point = dict(best)
        run = hasc_run(f"hasc_{aspects_label.replace('+', '')}_{attention}", point, args.final_epochs,
                       [f"model.hasc.aspects={aspects}", f"model.hasc.attention={attention}"])
        table.append((f"HASC {aspects_label}, {attention.upper()}", (aspects_label, attention), run))
    # Train the rows the acceptance compares first (U+S+C ATT, then AVG) so that a run cut short
    # by a time limit has spent its hours on them; the table keeps the paper's order.
    results = {label: run.results() for label, _, run in baselines + table[:2:-1]}
    final = table[-1][2]

    bpr_best = max(baselines, key=lambda row: results[row[0]]["sampled:100"].metrics["hr@5"])
    hasc_label, avg_label = table[-1][0], table[-2][0]

    def gain(label, reference):
        return 100 * (results[label]["sampled:100"].metrics["hr@5"] /
                      results[reference]["sampled:100"].metrics["hr@5"] - 1)

    lines = [
        "## HASC on Flickr F.S (Wu et al.: Table 3 ablations, tuning grid, speed, two-stage retrieval)",
        "",
        f"Command: `.venv/bin/python tools/bench_hasc_flickr.py --grid-epochs {args.grid_epochs}` (configs "
        "`configs/hasc_flickr_fs.yaml`, BPR-MF recipe `configs/bpr_flickr_fs_retrieval.yaml`). All models trained on "
        "`likes_train.tsv` only, early stopping and grid selection on one like per user held out of it; every row "
        "evaluated on `likes_val.tsv` (4,418 users) with the same seed, so all rows rank the held-out like against "
        "the same sampled negatives. HASC: U+S+C aspects, no visual input (F.S image features were never "
        "published), P and W initialised from the first BPR-MF row (same D, HASC's trainer settings); grid "
        "points selected on all 4,418 users' holdout like.",
        "",
        f"Selected hyperparameters: **{point_label(best)}**; {table[-1][2].state().get('completed_epochs')} epochs "
        f"(best {table[-1][2].state().get('best_epoch')}).",
        "",
        "| model | HR@5 (N=100) | NDCG@5 (N=100) | HR@5 (N=1000) | NDCG@5 (N=1000) | HR@5 vs HASC's BPR-MF init |"
        " paper (Table 3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, key, _ in table:
        r100, r1000 = results[label]["sampled:100"], results[label]["sampled:1000"]
        rel = "" if key is None else f"{gain(label, table[0][0]):+.2f}%"
        paper = "" if key is None else f"+{PAPER_GAIN[key]:.2f}%"
        lines.append(f"| {label} | {cell(r100, 'hr@5')} | {cell(r100, 'ndcg@5')} | {cell(r1000, 'hr@5')} | "
                     f"{cell(r1000, 'ndcg@5')} | {rel} | {paper} |")
    lines += ["", "Figures: mean ± std over the 10 repeats of the sampled protocol (fresh negatives each repeat). "
              f"Paper (F.S, at N=100, which its published numbers match): BPR {PAPER['BPR']}, "
              f"HASC Base+Auxil {PAPER['HASC Base+Auxil']}."]

    r = {label: results[label]["sampled:100"] for label, _, _ in table}

    def beats(a, b):
        diff = r[a].metrics["hr@5"] - r[b].metrics["hr@5"]
        spread = r[a].std["hr@5"] + r[b].std["hr@5"]
        return diff, spread, diff > spread
    checks = []
    for other in [row[0] for row in baselines] + [avg_label]:
        diff, spread, ok = beats(hasc_label, other)
        checks.append(f"- HASC (U+S+C, ATT) vs {other}: HR@5 {diff:+.4f} (sum of the two stds {spread:.4f}) → "
                      f"{'beats it by more than the spread' if ok else 'NOT beyond the spread'}.")
    hr = r[hasc_label].metrics["hr@5"]
    checks.append(f"- Target HR@5 ≥ 0.39: {hr:.4f} → {'met' if hr >= 0.39 else 'not met'}; target ≥ 8% above "
                  f"BPR-MF: {gain(hasc_label, table[0][0]):+.2f}% vs its BPR-MF init, "
                  f"{gain(hasc_label, table[1][0]):+.2f}% vs the tuned BPR-MF at the same D, "
                  f"{gain(hasc_label, bpr_best[0]):+.2f}% vs the best BPR-MF ({bpr_best[0]}).")
    lines += ["", "Acceptance checks (N=100, 10 repeats):", ""] + checks

    lines += ["", "### Tuning grid", "",
              f"Coordinate search from {point_label(START_POINT)} (the paper's point with the λ and Q/X "
              "initialisation of the docs/models/hasc.md probes); each stage keeps the best "
              f"value so far. Each point trained ≤ {args.grid_epochs} epochs with early stopping; selected by "
              "holdout HR@5 (train holdout, N=100, 1 repeat); likes_val HR@5 shown for reference only.", "",
              "| stage | point | holdout HR@5 | likes_val HR@5 (N=100) | best epoch |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {label} | {h:.4f} | {v:.4f} | {e} |" for k, label, h, v, e in grid_rows]

    timing = time_epoch(final)
    lines += ["", "### Training speed", "",
              f"{timing['likes']:,} training likes × {timing['negatives']} negatives, batch {timing['batch']}: "
              f"{timing['steps_per_epoch']:,} steps per epoch. Measured over 300 steps: **{timing['ms_per_step']:.0f} "
              f"ms/step = {timing['epoch_minutes']:.2f} min/epoch** (target ≤ 3), {timing['cpu_ms_per_step']:.0f} "
              f"CPU-ms/step. Load average {timing['load_before']:.1f} → {timing['load_after']:.1f} on 2 cores "
              "shared with other jobs, so wall time is an upper bound. Whole-run average including per-epoch "
              f"validation: {final.epoch_seconds() / 60:.2f} min/epoch."]

    recall = two_stage(final)
    lines += ["", "### Two-stage retrieval", "",
              "Stage 1: dot product of [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] (γ' over the two user-side aspects) with "
              "[W_i, b_i], top N; stage 2: exact HASC score (creator term, full γ) of those N. Recall of the "
              "two-stage top-10 against the exact top-10 of full scoring (all 4,418 users, training likes excluded):",
              "", "| N retrieved | recall@10 vs exact | ms per user (both stages) |", "|---|---|---|"]
    lines += [f"| {n} | {rec:.4f} | {ms:.2f} |" for n, rec, ms in recall]
    lines += ["", f"Wall clock of this command: {(time.time() - started) / 60:.0f} min (runs reused from earlier "
                  f"invocations are not retrained); load average at the start {load_start:.1f}."]
    text = "\n".join(lines)
    benchmark_report.publish("hasc_flickr_fs", text, write=not args.no_report)


if __name__ == "__main__":
    main()
