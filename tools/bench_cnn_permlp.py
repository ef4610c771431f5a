"""Section ``cnn_permlp``: CNN-PerMLP and the paper's baselines on MovieLens posters and Last.fm-2k.

For each data set, every trained row of the comparison (CNN-PerMLP, the non-personalized
network, CH-PerMLP where there are pixels, PITF) is trained on ``repeats`` leave-posts-out
splits (split seed = run seed = r); MP and MP-u are counted on the same splits. Figures are
F1 / P / R @ 1, 3, 5, 10 over the test posts, mean ± std over the repeats, on all test
posts and on the posts of new images; then a paired t-test of CNN-PerMLP against the best
baseline on per-post F1@5 (pairs: every test post of every repeat), and the training
throughput (posts/s). On Last.fm-2k each trained row first picks its learning rate on
the holdout carved from the training posts (split 0), with the same grid size per row;
the test posts are never looked at for it.

    python tools/bench.py --sections cnn_permlp [--option "datasets=['posters']"]

Needs $TFVREC_SHARED_DATA (default ../shared/data): movielens_posters/ and lastfm_2k/.
Runs under runs/bench_cnn_permlp/ are reused while the measured code is unchanged (a killed benchmark resumes).
"""
import dataclasses
import json
import os

import numpy as np

from harness import Section, keyed, quick_sets
from harness import paths as P
from harness import toy

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
REPEATS = {"posters": 3, "lastfm": 2}  # Last.fm's runs are ~20× longer


def dataset_config(ctx, dataset, sets):
    """The config of ``dataset``'s run with ``sets`` (quick: on a toy copy of the data set)."""
    config_file = DATASETS[dataset][0]
    if not ctx.quick:
        return ctx.config(config_file, sets)
    if dataset == "posters":  # the posters of the quick features, every user
        import bench_features
        from tfvrec.data import features as features_lib
        ids, _ = features_lib.load_features(bench_features.ensure_features(ctx))
        return toy.config(ctx, config_file, sets, users=None, items=ids.tolist())
    return toy.config(ctx, config_file, sets, users=300)


def run(ctx, dataset, name, sets, seed, tag=""):
    from tfvrec.training import trainer
    sets = ctx.opt("set") + sets + [f"model.cnn_permlp.split_seed={seed}", f"runtime.seed={seed}", "trainer.verbose=0"]
    if ctx.quick:
        sets += quick_sets(steps=10, validation_users=0) + ["model.cnn_permlp.min_tag_count=1"]
    config = dataset_config(ctx, dataset, sets)
    config.runtime.model_dir = ctx.run_dir(dataset, keyed(f"{name}{tag}-s{seed}", sets))
    cached = os.path.join(config.runtime.model_dir, "bench_rows")  # the run's table (with per-post values)
    fresh = []

    def train(config):  # trainer.train returns the table with its per-post values
        fresh.append(trainer.train(config))

    trained = ctx.trained(config, train=train)
    if fresh:
        rows, load = fresh[0], os.getloadavg()[0]  # the load at the end of training
        save_rows(cached, rows, load)
    elif os.path.exists(cached + ".json") and os.path.exists(cached + ".npz"):
        rows, load = load_rows(cached)
    else:  # finished, its table not kept: evaluated again
        rows, load = trainer.train(config), float("nan")
        save_rows(cached, rows, load)
    state = trained.state
    seconds = state.train_seconds
    return {"rows": {(scorer, r.protocol): r for scorer, r in rows}, "best": state.best_value,
            "posts_per_s": trained.steps * config.trainer.batch_size / seconds if seconds else float("nan"),
            "epochs": state.completed_epochs, "load": load}


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
    from tfvrec.evaluation.protocols import EvalResult
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


def tune(ctx, dataset, name, sets, grid):
    """The learning rate of ``grid`` with the best holdout F1@5 (split 0)."""
    scores = {}
    for lr in grid:
        result = run(ctx, dataset, name, sets + [f"trainer.learning_rate={lr}"], 0, tag=f"-lr{lr}")
        scores[lr] = result["best"]
        ctx.log(f"tuning {dataset}/{name}: lr={lr} holdout F1@5={result['best']:.4f}")
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


def bench(ctx, dataset, repeats):
    config_file, variants, grid = DATASETS[dataset]
    variants = {name: v for name, v in variants.items() if name in ctx.opt("variants")}
    grid = {name: g[:ctx.opt("grid_points")] for name, g in grid.items()} if grid else None
    chosen, tuning, tags = {}, {}, {}
    for name, (_, sets) in variants.items():
        chosen[name], tags[name] = [], ""
        if grid:  # split 0's run at the chosen rate is also the first repeat (reused, not retrained)
            lr, scores = tune(ctx, dataset, name, sets, grid[name])
            chosen[name], tuning[name], tags[name] = [f"trainer.learning_rate={lr}"], scores, f"-lr{lr}"
    runs = {name: [run(ctx, dataset, name, variants[name][1] + chosen[name], seed, tag=tags[name])
                   for seed in range(repeats)] for name in variants}
    out = []
    variants = dict(variants)
    for view in VIEWS:
        results = {}
        for name, (label, _) in variants.items():
            results[label] = [r["rows"].get(("cnn_permlp", view)) for r in runs[name]]
        first = runs["cnn_permlp"]
        for baseline in ("MP", "MP-u"):
            results[baseline] = [r["rows"].get((baseline, view)) for r in first]
        out.append((view, results))
    return runs, out, tuning, chosen, variants


def paired(results, ours_label, best=None):
    """Paired t-test of ours vs the best baseline (mean F1@5; or ``best``), per test post of every repeat."""
    from tfvrec.evaluation import significance
    means = {label: np.mean([r.metrics["f1@5"] for r in rs if r is not None]) for label, rs in results.items()
             if label != ours_label and any(r is not None for r in rs)}
    best = best or max(means, key=means.get)
    a = np.concatenate([r.per_user["f1@5"] for r in results[ours_label]])
    b = np.concatenate([r.per_user["f1@5"] for r in results[best]])
    return best, significance.paired_test(a, b, "t")


def describe_test(test):
    from tfvrec.evaluation import significance
    verdict = ("no significant difference at the 5% level" if not test.p_value < 0.05 else
               "significantly better" if test.mean_difference > 0 else "significantly worse")
    return (f"{test.num_pairs} (post, split) pairs: mean difference {test.mean_difference:+.4f} (95% CI "
            f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]), p = {significance.format_p(test.p_value)} ({verdict})")


def run_section(ctx):
    sections = ["## CNN-PerMLP: tag recommendation on MovieLens posters and Last.fm-2k",
                "",
                "Leave-posts-out per user: 20% of each user's posts are the test set, 10% of the rest the validation "
                "holdout (early stopping; Last.fm's learning-rate choice), repeated over R splits (split seed = run "
                "seed = 0..R−1); figures are mean ± std over the repeats; F1@K = 2·P@K·R@K / (P@K + R@K) of the mean "
                "P@K and R@K (the paper's eq. 12)."]
    for dataset in ctx.opt("datasets"):
        repeats = ctx.opt("repeats") or REPEATS[dataset]
        runs, views, tuning, chosen, variants = bench(ctx, dataset, repeats)
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
            if any(r is None for rs in results.values() for r in rs):
                sections += ["", "(Too few posts in this view for the paired test.)"]
                continue
            best, test = paired(results, ours)
            sections += ["", f"Paired t-test, {ours} vs the best baseline ({best}) on per-post F1@5 over "
                         f"{describe_test(test)}."]
            if best != "MP-u":  # the paper's premise for narrow folksonomies: personalized beats MP-u
                sections[-1] += (f" Against MP-u: {describe_test(paired(results, ours, 'MP-u')[1])}.")
        lines = []
        for name, rs in runs.items():
            speed = np.mean([r["posts_per_s"] for r in rs])
            load = max(r["load"] for r in rs)
            note = f", under load (1-min load average up to {load:.1f})" if load > 1.25 * os.cpu_count() else ""
            lines.append(f"{variants[name][0]}: {speed:,.0f} posts/s{note}")
        sections += ["", f"Training throughput (posts/s over the whole run, per-epoch validation included, "
                         f"{os.cpu_count()} CPU cores): " + "; ".join(lines) + "."]
    return "\n".join(sections)


SECTIONS = [Section(
    name="cnn_permlp", title="CNN-PerMLP and its baselines on MovieLens posters and Last.fm-2k (F1/P/R@K, repeats)",
    run=run_section, data=("movielens_posters", "lastfm_2k"), make="bench-cnn-permlp",
    paths=P.TRAINING + P.EVALUATION + P.model("cnn_permlp") + P.config("cnn_permlp_posters.yaml")
    + P.config("cnn_permlp_lastfm.yaml"),
    options={"datasets": ["posters", "lastfm"], "repeats": 0, "set": [], "variants": sorted(POSTERS), "grid_points": 2},
    quick={"repeats": 1, "variants": ["cnn_permlp", "pitf"], "grid_points": 1})]
