"""Benchmark: tfrs' retrieval objective against the pairwise one, same data, budget and protocol.

    .venv/bin/python tools/bench_retrieval.py                      # CuratorNet on UGallery and posters, BPR-MF on F.S
    .venv/bin/python tools/bench_retrieval.py --only ugallery --triplets 2000000

For each data set the model is trained twice from its shipped config, once with its pairwise
loss (``logistic``) and once with ``loss: retrieval`` (`tfvrec.tasks.retrieval`: softmax over the
global batch's positives and the examples' sampled negatives), with the same examples, steps,
batch and learning rate; both runs are then evaluated in one table with the paper's protocol,
so the paired t-test over users compares them on the same candidates. Wall time is the
training time of each run (``training_state.json``), with the load average. Runs live in
``runs/bench_retrieval/`` (reused when finished, resumed when killed). Needs the real data sets
(``$TFVREC_SHARED_DATA``); the posters also need their EfficientNet-Lite0 features
(``tools/bench_curatornet.py`` explains how they are made).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tfvrec  # noqa: E402,F401

from tfvrec import benchmark_report  # noqa: E402
from tfvrec import config as config_lib  # noqa: E402
from tfvrec.runs import Run  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(REPO, "runs", "bench_retrieval")
# name -> (config, model section, budget: "triplets" (a D_S) or "epochs", metrics of the table)
SETS = {
    "ugallery": ("curatornet_ugallery.yaml", "curatornet", "triplets", ["auc", "recall@20", "ndcg@100"]),
    "posters": ("curatornet_posters.yaml", "curatornet", "triplets", ["auc", "recall@20", "ndcg@100"]),
    "flickr_fs": ("bpr_flickr_fs_retrieval.yaml", "bpr", "epochs", ["hr@5", "ndcg@5", "hr@10"]),
}


def log(message):
    print(f"[bench_retrieval] {message}", flush=True)


def budget(kind, args):
    if kind == "triplets":  # 10 epochs over a D_S of --triplets triplets
        steps = max(1, -(-args.triplets // (512 * 10)))
        return [f"model.curatornet.num_triplets={args.triplets}", "trainer.epochs=10",
                f"trainer.steps_per_epoch={steps}", "trainer.batch_size=512"]
    return [f"trainer.epochs={args.bpr_epochs}"]


def run_pair(name, args):
    from tfvrec.evaluation import evaluator, report
    from tfvrec.training import trainer
    config_file, section, kind, metrics = SETS[name]
    path = os.path.join(REPO, "configs", config_file)
    models, seconds, dataset, config = {}, {}, None, None
    for loss in ("logistic", "retrieval"):
        model_dir = os.path.join(RUNS, f"{name}-{loss}-{args.triplets if kind == 'triplets' else args.bpr_epochs}")
        config = config_lib.load_config(path, budget(kind, args) + [
            f"model.{section}.loss={loss}", f"runtime.model_dir={model_dir}", "trainer.verbose=2", "eval.baselines=[]"])
        if name == "posters":
            from bench_curatornet import LITE0_FEATURES, LITE0_MODEL, ensure_poster_features
            ensure_poster_features(config, LITE0_FEATURES, LITE0_MODEL)
        if not Run(model_dir).finished:
            log(f"training {name} with loss {loss} into {model_dir}")
            trainer.train(config)
        state = json.load(open(os.path.join(model_dir, "training_state.json")))
        seconds[loss] = state.get("train_seconds", float("nan"))
        config, dataset, models[loss] = Run(model_dir).load()
    judged = config.eval.split if config.eval.split in dataset.interactions else "validation"
    heldout = evaluator.heldout_by_user(dataset.split(judged))
    rows = evaluator.evaluate_scorers({"pairwise (logistic)": models["logistic"],
                                       "retrieval (tfrs softmax)": models["retrieval"]}, dataset, heldout,
                                      config.eval.protocols, config.eval.ks, config.eval.repeats, config.eval.seed,
                                      judged=judged)
    table = report.format_table([r for _, r in rows], row_labels=[n for n, _ in rows], metrics=metrics)
    return rows, seconds, table, config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETS), action="append", help="data sets (default: all)")
    parser.add_argument("--triplets", type=int, default=2_000_000, help="CuratorNet training triplets per run")
    parser.add_argument("--bpr-epochs", type=int, default=30, help="BPR-MF epoch cap (early stopping)")
    parser.add_argument("--no_report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    sys.path.insert(0, os.path.join(REPO, "tools"))
    load_start = os.getloadavg()[0]
    lines = ["## The retrieval objective against the pairwise one",
             "",
             f"Command: `.venv/bin/python tools/bench_retrieval.py --triplets {args.triplets} --bpr-epochs "
             f"{args.bpr_epochs}`. Each model trained twice from its shipped config, once per loss, with the "
             "same examples, budget and learning rate; the two runs evaluated in one table (the paper's "
             "protocol; p: paired t-test over users of the pairwise row against the retrieval row). Retrieval: "
             "tfrs softmax over the global batch's positives plus the sampled negatives, accidental hits "
             "removed, log-Q correction for BPR-MF (item frequency) and off for CuratorNet (guideline sampling).",
             ""]
    for name in args.only or sorted(SETS):
        rows, seconds, table, config = run_pair(name, args)
        log(f"{name}:\n{table}")
        lines += [f"### {name} ({config.model.name})", "", table, "",
                  f"Training time: pairwise {seconds['logistic']:.0f} s, retrieval {seconds['retrieval']:.0f} s "
                  f"(ratio {seconds['retrieval'] / max(seconds['logistic'], 1e-9):.2f}).", ""]
    lines.append(f"Load average at start {load_start:.2f}, at the end {os.getloadavg()[0]:.2f} (2 cores; times "
                 "taken with the load above 2.5 are not speed measurements).")
    benchmark_report.publish("retrieval_objective", "\n".join(lines), write=not args.no_report)


if __name__ == "__main__":
    main()
