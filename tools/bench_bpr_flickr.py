"""Benchmark: BPR-MF on Flickr F.S (the HASC paper's data), the paper's protocols.

Trains ``configs/bpr_flickr_fs.yaml`` from scratch on likes_train.tsv, evaluates on
likes_val.tsv with 100 and 1000 sampled negatives (10 repeats) and full ranking,
and writes HR/nDCG and the training time to ``docs/benchmarks.md``.

    .venv/bin/python tools/bench_bpr_flickr.py [--set key=value ...]

Needs $TFVREC_SHARED_DATA/flickr_fs (default ../shared/data; not part of this repository).
"""
import argparse
import json
import os
import shutil
import sys
import time

import tfvrec  # noqa: F401

from tfvrec import benchmark_report
from tfvrec import config as config_lib
from tfvrec.data.resolve import expand_path
from tfvrec.evaluation import significance
from tfvrec.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "bpr_flickr_fs.yaml"))
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--model_dir", default=os.path.join(REPO, "runs", "bench_bpr_flickr_fs"))
    parser.add_argument("--no_report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--resume", action="store_true",
                        help="keep --model_dir: resume an interrupted run, or only re-evaluate a finished one")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    config = config_lib.load_config(args.config, args.set + [f"runtime.model_dir={args.model_dir}",
                                                             "trainer.verbose=2"])
    raw = expand_path(config.data.raw_path)
    if not os.path.isdir(raw):
        sys.exit(f"Flickr F.S not found at {raw}; this benchmark needs the real data sets ($TFVREC_SHARED_DATA)")
    if not args.resume:
        shutil.rmtree(args.model_dir, ignore_errors=True)
    start = time.time()
    rows = trainer.train(config)
    wall = time.time() - start
    state = json.load(open(os.path.join(args.model_dir, "training_state.json")))

    sets = " --set " + " --set ".join(args.set) if args.set else ""
    minutes_per_epoch = state.get("train_seconds", 0) / 60 / max(1, state["completed_epochs"])
    lines = [
        "## BPR-MF on Flickr F.S (HASC paper data)",
        "",
        f"Command: `.venv/bin/python tools/bench_bpr_flickr.py{sets}`"
        f" (config `{os.path.relpath(args.config, REPO)}`). Trained on `likes_train.tsv` only (early stopping on one"
        " like per user held out of train); evaluated on `likes_val.tsv` (4,418 users).",
        "",
        f"Training: {state['completed_epochs']} epochs (best epoch {state.get('best_epoch')}), "
        f"{state.get('train_seconds', 0):.0f} s of training ({minutes_per_epoch:.2f}"
        f" min/epoch incl. per-epoch validation); this command took {wall:.0f} s"
        f"{' (re-evaluation of the finished run)' if args.resume else ''}; embedding dim"
        f" {config.model.bpr.embedding_dim}, λ {config.model.bpr.l2}, batch {config.trainer.batch_size},"
        f" lr {config.trainer.learning_rate}, optimizer {config.trainer.optimizer}. Load average at the end:"
        f" {os.getloadavg()[0]:.1f} (2 cores, shared with other jobs).",
        "",
        "| model | protocol | HR@5 | HR@5 95% CI | p (HR@5) | nDCG@5 | HR@10 | nDCG@10 | AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in rows:
        m, s = result.metrics, result.std
        cell = (lambda k: f"{m[k]:.4f} ± {s[k]:.4f}") if result.repeats > 1 else (lambda k: f"{m[k]:.4f}")
        label = f"{result.protocol}" + (f" ({result.repeats} repeats, mean ± std)" if result.repeats > 1 else "")
        low, high = result.ci.get("hr@5", (float("nan"), float("nan")))
        test = result.comparison.get("hr@5")
        p = "(reference)" if not test else significance.format_p(test["p_value"])
        lines.append(f"| {name} | {label} | {cell('hr@5')} | [{low:.4f}, {high:.4f}] | {p} | {cell('ndcg@5')} | "
                     f"{cell('hr@10')} | {cell('ndcg@10')} | {cell('auc')} |")
    lines += ["", "± std: across the repeats of the sampled protocol; 95% CI: t interval over users; p: two-sided "
                  "paired t-test over users of BPR-MF against the row (same candidates).",
              "", "Paper reference (Wu et al., HASC, Table 2): BPR HR@5 ≈ 0.349 at 100 sampled "
                  "negatives; ≈ 0.09 expected at 1000. Before the exclusion fix (a held-out training like could be "
                  "drawn as a negative; validation knew the test items) the same run gave HR@5 0.3869 ± 0.0021 at "
                  "N=100."]
    text = "\n".join(lines)
    benchmark_report.publish("bpr_flickr_fs", text, write=not args.no_report)


if __name__ == "__main__":
    main()
