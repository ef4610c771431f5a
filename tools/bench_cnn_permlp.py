"""Benchmark: CNN-PerMLP and the paper's baselines on MovieLens posters and Last.fm-2k.

For each data set, every trained row of the comparison (CNN-PerMLP, the non-personalized
network, CH-PerMLP where there are pixels, PITF) is trained on ``--repeats`` leave-posts-out
splits (split seed = run seed = r); MP and MP-u are counted on the same splits. Figures are
F1 / P / R @ 1, 3, 5, 10 over the test posts, mean ± std over the repeats, on all test
posts and on the posts of new images; then a paired t-test of CNN-PerMLP against the best
baseline on per-post F1@5 (pairs: every test post of every repeat), and the training
throughput (posts/s). On Last.fm-2k each trained row first picks its learning rate on
the holdout carved from the training posts (split 0), with the same grid size per row;
the test posts are never looked at for it.

    .venv/bin/python tools/bench_cnn_permlp.py [--repeats 3] [--datasets posters,lastfm] [--no_report]

Needs $TFVREC_SHARED_DATA (default ../shared/data): movielens_posters/ and lastfm_2k/.
Finished runs under runs/bench_cnn_permlp/ are reused (a killed benchmark resumes).
"""
import argparse
import json
import dataclasses
import os
import sys
import time

import numpy as np

import tfvrec  # noqa: F401

from tfvrec import benchmark_report
from tfvrec import config as config_lib
from tfvrec.runs import Run
from tfvrec.evaluation import significance
from tfvrec.evaluation.protocols import EvalResult
from tfvrec.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KS = (1, 3, 5, 10)
VIEWS = ("test posts", "test posts, new images")

# name → (label, overrides)
POSTERS = {
    "cnn_permlp": ("CNN-PerMLP", []),
    "cnn": ("CNN (non-personalized)", ["model.cnn_permlp.personalized=false"]),
    "ch_permlp": ("CH-PerMLP", ["model.cnn_permlp.features=histogram"]),
    "pitf": ("PITF", ["model.cnn_permlp.architecture=pitf", "model.cnn_permlp.features=embedding",
                      "model.cnn_permlp.embedding_dim=64", "model.cnn_permlp.l2=1e-4", "trainer.learning_rate=0.01"]),
}
LASTFM = {
    "cnn_permlp": ("PerMLP (learned artist vector for z)", []),
    "cnn": ("MLP, non-personalized (artist vector)", ["model.cnn_permlp.personalized=false"]),
    "pitf": ("PITF", ["model.cnn_permlp.architecture=pitf", "model.cnn_permlp.embedding_dim=64",
                      "model.cnn_permlp.l2=1e-5"]),
}
# Last.fm learning-rate grid per trained row (the same size for each), chosen on the holdout posts.
LASTFM_GRID = {"cnn_permlp": [0.001, 0.003], "cnn": [0.001, 0.003], "pitf": [0.003, 0.01]}
DATASETS = {"posters": ("cnn_permlp_posters.yaml", POSTERS, None),
            "lastfm": ("cnn_permlp_lastfm.yaml", LASTFM, LASTFM_GRID)}
EXTRA_SETS = []  # --set: applied to every run (smoke tests)
REPEATS = {"posters": 3, "lastfm": 2}  # Last.fm's runs are ~20× longer


def run(dataset, name, sets, seed, root, tag=""):
    config_file, _, _ = DATASETS[dataset]
    model_dir = os.path.join(root, dataset, f"{name}{tag}-s{seed}")
    config = config_lib.load_config(os.path.join(REPO, "configs", config_file),
                                    EXTRA_SETS + sets + [f"model.cnn_permlp.split_seed={seed}", f"runtime.seed={seed}",
                                            f"runtime.model_dir={model_dir}", "trainer.verbose=0"])
    start = time.time()
    cached = os.path.join(model_dir, "bench_rows")  # a finished run's table (with per-post values)
    if Run(model_dir).finished and os.path.exists(cached + ".json") and os.path.exists(cached + ".npz"):
        rows, load = load_rows(cached)
    else:
        rows = trainer.train(config)
        load = os.getloadavg()[0]  # at the end of training (a reused run keeps the figure of its training)
        save_rows(cached, rows, load)
    state = json.load(open(os.path.join(model_dir, "training_state.json")))
    steps = state["completed_epochs"] * state.get("steps_per_epoch", 0)
    seconds = state.get("train_seconds", 0.0) or (time.time() - start)
    return {"rows": {(scorer, r.protocol): r for scorer, r in rows}, "best": state.get("best_value"),
            "posts_per_s": steps * config.trainer.batch_size / seconds if seconds else float("nan"),
            "epochs": state["completed_epochs"], "load": load}


_ARRAYS = ("users", "per_user")


def save_rows(stem, rows, load):
    """The table as JSON (figures) + .npz (per-user arrays): data a reader cannot run, unlike a pickle."""
    table, arrays = [], {}
    for n, (scorer, result) in enumerate(rows):
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name not in _ARRAYS}
        table.append({"scorer": scorer, **fields})
        if result.users is not None:
            arrays[f"{n}/users"] = np.asarray(result.users)
        for metric, values in (result.per_user or {}).items():
            arrays[f"{n}/per_user/{metric}"] = np.asarray(values)
    with open(stem + ".npz.tmp", "wb") as f:
        np.savez(f, **arrays)
    with open(stem + ".json.tmp", "w") as f:
        json.dump({"load": load, "rows": table}, f, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(stem + ".npz.tmp", stem + ".npz")
    os.replace(stem + ".json.tmp", stem + ".json")


def load_rows(stem):
    with open(stem + ".json") as f:
        saved = json.load(f)
    rows = []
    with np.load(stem + ".npz", allow_pickle=False) as arrays:
        for n, fields in enumerate(saved["rows"]):
            scorer = fields.pop("scorer")
            per_user = {key.split("/", 2)[2]: arrays[key] for key in arrays.files if key.startswith(f"{n}/per_user/")}
            users = arrays[f"{n}/users"] if f"{n}/users" in arrays.files else None
            rows.append((scorer, EvalResult(**fields, users=users, per_user=per_user or None)))
    return rows, saved["load"]


def tune(dataset, name, sets, grid, root):
    """The learning rate of ``grid`` with the best holdout F1@5 (split 0)."""
    scores = {}
    for lr in grid:
        result = run(dataset, name, sets + [f"trainer.learning_rate={lr}"], 0, root, tag=f"-lr{lr}")
        scores[lr] = result["best"]
        print(f"  tuning {dataset}/{name}: lr={lr} holdout F1@5={result['best']:.4f}", flush=True)
    return max(scores, key=scores.get), scores


def mean_std(values):
    values = np.asarray(values, np.float64)
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def table(results, labels, view):
    metrics = [f"{m}@{k}" for m in ("f1", "precision", "recall") for k in KS]
    names = {"f1": "F1", "precision": "P", "recall": "R"}
    head = ["model", "posts"] + [f"{names[m.split('@')[0]]}@{m.split('@')[1]}" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, per_repeat in results.items():
        found = [r for r in per_repeat if r is not None]
        if not found:
            continue
        cells = [label, str(found[0].num_users)] + [mean_std([r.metrics[m] for r in found]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench(dataset, repeats, root):
    config_file, variants, grid = DATASETS[dataset]
    chosen, tuning, tags = {}, {}, {}
    for name, (_, sets) in variants.items():
        chosen[name], tags[name] = [], ""
        if grid:  # split 0's run at the chosen rate is also the first repeat (reused, not retrained)
            lr, scores = tune(dataset, name, sets, grid[name], root)
            chosen[name], tuning[name], tags[name] = [f"trainer.learning_rate={lr}"], scores, f"-lr{lr}"
    runs = {name: [run(dataset, name, variants[name][1] + chosen[name], seed, root, tag=tags[name])
                   for seed in range(repeats)] for name in variants}
    out = []
    for view in VIEWS:
        results = {}
        for name, (label, _) in variants.items():
            results[label] = [r["rows"].get(("cnn_permlp", view)) for r in runs[name]]
        first = runs["cnn_permlp"]
        for baseline in ("MP", "MP-u"):
            results[baseline] = [r["rows"].get((baseline, view)) for r in first]
        out.append((view, results))
    return runs, out, tuning, chosen


def paired(results, ours_label, best=None):
    """Paired t-test of ours vs the best baseline (mean F1@5; or ``best``), per test post of every repeat."""
    means = {label: np.mean([r.metrics["f1@5"] for r in rs if r is not None]) for label, rs in results.items()
             if label != ours_label and any(r is not None for r in rs)}
    best = best or max(means, key=means.get)
    a = np.concatenate([r.per_user["f1@5"] for r in results[ours_label]])
    b = np.concatenate([r.per_user["f1@5"] for r in results[best]])
    return best, significance.paired_test(a, b, "t")


def describe_test(test):
    verdict = ("no significant difference at the 5% level" if not test.p_value < 0.05 else
               "significantly better" if test.mean_difference > 0 else "significantly worse")
    return (f"{test.num_pairs} (post, split) pairs: mean difference {test.mean_difference:+.4f} (95% CI "
            f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]), p = {significance.format_p(test.p_value)} ({verdict})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=0, help="splits per data set (default: posters 3, "
                                                                    "Last.fm 2)")
    parser.add_argument("--datasets", default="posters,lastfm")
    parser.add_argument("--root", default=os.path.join(REPO, "runs", "bench_cnn_permlp"))
    parser.add_argument("--no_report", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--set", action="append", default=[], help="config override for every run (smoke tests)")
    args = parser.parse_args(argv)
    EXTRA_SETS.extend(args.set)
    os.chdir(REPO)
    from tfvrec.data.resolve import shared_data_dir
    for folder in ("movielens_posters", "lastfm_2k"):
        if not os.path.isdir(os.path.join(shared_data_dir(), folder)):
            sys.exit(f"{folder} not found under {shared_data_dir()}; this benchmark needs the real data sets "
                     "($TFVREC_SHARED_DATA)")
    started = time.time()
    sections = ["## CNN-PerMLP: tag recommendation on MovieLens posters and Last.fm-2k",
                "",
                "Command: `make bench-cnn-permlp` (`.venv/bin/python tools/bench_cnn_permlp.py`). Leave-posts-out "
                "per user: 20% of each user's posts are the test set, 10% of the rest the validation holdout "
                "(early stopping; Last.fm's learning-rate choice), repeated over R splits (split seed = run seed "
                "= 0..R−1); figures are mean ± std over the repeats; F1@K = 2·P@K·R@K / (P@K + R@K) of the mean "
                "P@K and R@K (the paper's eq. 12)."]
    for dataset in args.datasets.split(","):
        repeats = args.repeats or REPEATS[dataset]
        runs, views, tuning, chosen = bench(dataset, repeats, args.root)
        variants = DATASETS[dataset][1]
        ours = variants["cnn_permlp"][0]
        title = {"posters": "MovieLens posters (real pixels; tags of mls_tags.csv used ≥ 5 times on movies with "
                            "a poster)",
                 "lastfm": "Last.fm-2k (no images: a learned artist vector stands in for the CNN features)"}[dataset]
        sections += ["", f"### {title}", ""]
        posts = views[0][1][ours][0]
        sections.append(f"R = {repeats} splits. {posts.num_users} test posts in the first split; "
                        f"{views[1][1][ours][0].num_users if views[1][1][ours][0] else 0} of them show an item no "
                        "training post has (new images / new artists).")
        if tuning:
            sections.append("Learning rates on the holdout (holdout F1@5, split 0): " + "; ".join(
                f"{variants[n][0]}: " + ", ".join(f"{lr} → {v:.4f}" for lr, v in s.items()) for n, s in tuning.items())
                + ".")
        for view, results in views:
            heading = view.replace("new images", "new artists") if dataset == "lastfm" else view
            sections += ["", f"**{heading}**", "", table(results, variants, view)]
            best, test = paired(results, ours)
            sections += ["", f"Paired t-test, {ours} vs the best baseline ({best}) on per-post F1@5 over "
                         f"{describe_test(test)}."]
            if best != "MP-u":  # the paper's premise for narrow folksonomies: personalized beats MP-u
                sections[-1] += (f" Against MP-u: {describe_test(paired(results, ours, 'MP-u')[1])}.")
        lines = []
        for name, rs in runs.items():
            speed = np.mean([r["posts_per_s"] for r in rs])
            load = max(r["load"] for r in rs)
            note = f", under load (1-min load average up to {load:.1f})" if load > 2.5 else ""
            lines.append(f"{variants[name][0]}: {speed:,.0f} posts/s{note}")
        sections += ["", "Training throughput (posts/s over the whole run, per-epoch validation included, 2 CPU "
                         "cores shared with other work): " + "; ".join(lines) + "."]
    sections += ["", f"Whole benchmark: {(time.time() - started) / 60:.1f} min."]
    benchmark_report.publish("cnn_permlp", "\n".join(sections), write=not args.no_report)


if __name__ == "__main__":
    main()
