"""Section ``cnn_permlp``: CNN-PerMLP and the paper's baselines on MovieLens posters and Last.fm-2k.

For each data set, every trained row of the comparison (CNN-PerMLP, the non-personalized
network, CH-PerMLP where there are pixels, PITF) gets the same tuning: one grid per data set
over the learning rate and §4.2's L2 λ (``model.cnn_permlp.l2``), each point trained on split 0
with seed 0 under the data set's one epoch budget with early stopping on the holdout carved
from the training posts (the test posts are never looked at); a winner on a grid edge widens
that edge (×3 on the learning rate, ×10 on λ) up to ``widen`` times. The chosen point is then
trained with ``seeds`` training seeds on the same split (split seed 0; the seed-0 run is the
tuning run, reused). MP, MP-u and MP-u+i (a count mixture that learns nothing: the user's tag
frequencies plus the item's) are counted on that split. Figures are F1 / P / R @ 1, 3, 5, 10
over the test posts, mean ± std over the seeds, on all test posts and on the posts of new
images; then a paired t-test of CNN-PerMLP against the best baseline on per-post F1@5 averaged
over the seeds (pairs: the test posts), and the training throughput (posts/s).

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

# name → (label, overrides). The learning rate and λ come from the data set's grid, the same for every row.
POSTERS = {
    "cnn_permlp": ("CNN-PerMLP", []),
    "cnn": ("CNN (non-personalized)", ["model.cnn_permlp.personalized=false"]),
    "ch_permlp": ("CH-PerMLP", ["model.cnn_permlp.features=histogram"]),
    "pitf": ("PITF", ["model.cnn_permlp.architecture=pitf", "model.cnn_permlp.features=embedding",
                      "model.cnn_permlp.embedding_dim=64"]),
}
LASTFM = {
    "cnn_permlp": ("PerMLP (learned artist vector for z)", []),
    "cnn": ("MLP, non-personalized (artist vector)", ["model.cnn_permlp.personalized=false"]),
    "pitf": ("PITF", ["model.cnn_permlp.architecture=pitf", "model.cnn_permlp.embedding_dim=64"]),
}
# One grid per data set, shared by every trained row: learning rates (Adam) × §4.2's λ ∈ {0, 1e-5, 1e-4}.
GRIDS = {"posters": {"lr": [0.001, 0.003, 0.01], "l2": [0.0, 1e-5, 1e-4]},
         "lastfm": {"lr": [0.003, 0.01], "l2": [0.0, 1e-5, 1e-4]}}
DATASETS = {"posters": ("cnn_permlp_posters.yaml", POSTERS),
            "lastfm": ("cnn_permlp_lastfm.yaml", LASTFM)}
BASELINES = ("MP", "MP-u", "MP-u+i")
MIXTURE = "MP-u+i"


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
    sets = ctx.opt("set") + sets + ["model.cnn_permlp.split_seed=0", f"runtime.seed={seed}", "trainer.verbose=0"]
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


def point_sets(lr, l2):
    return [f"trainer.learning_rate={lr}", f"model.cnn_permlp.l2={l2}"]


def point_tag(lr, l2):
    return f"-lr{lr}-l2{l2}"


def widened(grid, scores):
    """Points past an edge of the grid where the best point sits on it: the next learning rate (×3 or ÷3)
    at the winner's λ, the next λ (×10; λ = 0 is a floor) at the winner's learning rate; [] if inside."""
    lr, l2 = max(scores, key=scores.get)
    rates, lambdas = sorted({p[0] for p in scores}), sorted({p[1] for p in scores})
    points = []
    if len(rates) > 1 and lr == rates[-1]:
        points.append((float(f"{lr * 3:.3g}"), l2))
    elif len(rates) > 1 and lr == rates[0]:
        points.append((float(f"{lr / 3:.3g}"), l2))
    if len(lambdas) > 1 and l2 == lambdas[-1] and l2 > 0:
        points.append((lr, float(f"{l2 * 10:.3g}")))
    return points


def tune(ctx, dataset, name, sets, grid):
    """The (learning rate, λ) of ``grid`` with the best holdout F1@5 (split 0, seed 0), edges widened."""
    scores = {}
    points = [(lr, l2) for lr in grid["lr"] for l2 in grid["l2"]]
    for step in range(ctx.opt("widen") + 1):
        for lr, l2 in points:
            result = run(ctx, dataset, name, sets + point_sets(lr, l2), 0, tag=point_tag(lr, l2))
            scores[(lr, l2)] = result["best"]
            ctx.log(f"tuning {dataset}/{name}: lr={lr} λ={l2} holdout F1@5={result['best']:.4f} "
                    f"({result['epochs']} epochs)")
        points = [p for p in widened(grid, scores) if p not in scores] if step < ctx.opt("widen") else []
        if not points:
            break
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


def bench(ctx, dataset, seeds):
    config_file, variants = DATASETS[dataset]
    variants = {name: v for name, v in variants.items() if name in ctx.opt("variants")}
    points = ctx.opt("grid_points")
    grid = {axis: values[:points] if points else values for axis, values in GRIDS[dataset].items()}
    chosen, tuning = {}, {}
    for name, (_, sets) in variants.items():  # seed 0's run at the chosen point is reused as the first seed
        chosen[name], tuning[name] = tune(ctx, dataset, name, sets, grid)
    runs = {name: [run(ctx, dataset, name, variants[name][1] + point_sets(*chosen[name]), seed,
                       tag=point_tag(*chosen[name])) for seed in range(seeds)] for name in variants}
    out = []
    for view in VIEWS:
        results = {}
        for name, (label, _) in variants.items():
            results[label] = [r["rows"].get(("cnn_permlp", view)) for r in runs[name]]
        first = runs["cnn_permlp"][:1]  # counted on the one split: the same for every seed
        for baseline in BASELINES:
            results[baseline] = [r["rows"].get((baseline, view)) for r in first]
        out.append((view, results))
    return runs, out, tuning, chosen, variants, grid


def per_post(results):
    """Per-post F1@5 averaged over the seeds (every seed scores the same test posts of split 0)."""
    return np.mean([r.per_user["f1@5"] for r in results], axis=0)


def paired(results, ours_label, best=None):
    """Paired t-test of ours vs the best baseline (mean F1@5; or ``best``) on per-post F1@5 averaged over seeds."""
    from tfvrec.evaluation import significance
    means = {label: np.mean([r.metrics["f1@5"] for r in rs if r is not None]) for label, rs in results.items()
             if label != ours_label and any(r is not None for r in rs)}
    best = best or max(means, key=means.get)
    return best, significance.paired_test(per_post(results[ours_label]), per_post(results[best]), "t")


def describe_test(test):
    from tfvrec.evaluation import significance
    verdict = ("no significant difference at the 5% level" if not test.p_value < 0.05 else
               "significantly better" if test.mean_difference > 0 else "significantly worse")
    return (f"{test.num_pairs} test posts (each averaged over the seeds): mean difference "
            f"{test.mean_difference:+.4f} (95% CI "
            f"[{test.ci_low:+.4f}, {test.ci_high:+.4f}]), p = {significance.format_p(test.p_value)} ({verdict})")


def run_section(ctx):
    sections = ["## CNN-PerMLP: tag recommendation on MovieLens posters and Last.fm-2k",
                "",
                "Leave-posts-out per user on one split (split seed 0): 20% of each user's posts are the test set, 10% "
                "of the rest the validation holdout (early stopping and the choice of the learning rate and λ on one "
                "grid shared by every trained row); the chosen point is trained with S training seeds; figures are "
                "mean ± std over the seeds (the counting rows MP, MP-u, MP-u+i have none); F1@K = 2·P@K·R@K / "
                "(P@K + R@K) of the mean P@K and R@K (the paper's eq. 12). MP-u+i: the user's training tag "
                "frequencies plus the item's (the tags other users' training posts gave it), learning nothing."]
    for dataset in ctx.opt("datasets"):
        seeds = ctx.opt("seeds")
        runs, views, tuning, chosen, variants, grid = bench(ctx, dataset, seeds)
        ours = variants["cnn_permlp"][0]
        title = {"posters": "MovieLens posters (real pixels; tags of mls_tags.csv used ≥ 5 times on movies with "
                            "a poster)",
                 "lastfm": "Last.fm-2k (no images: a learned artist vector stands in for the CNN features)"}[dataset]
        sections += ["", f"### {title}", ""]
        posts = views[0][1][ours][0]
        config = dataset_config(ctx, dataset, [])
        sections.append(f"S = {seeds} training seeds. {posts.num_users} test posts; "
                        f"{views[1][1][ours][0].num_users if views[1][1][ours][0] else 0} of them show an item no "
                        f"training post has (new images / new artists). Epoch budget for every row: "
                        f"{config.trainer.epochs} epochs, early stopping with patience "
                        f"{config.trainer.early_stopping_patience} on the holdout F1@5.")
        sections.append(f"Grid (every row): learning rate {grid['lr']} × λ {grid['l2']}, edges widened where a "
                        f"winner sat on one (up to {ctx.opt('widen')} step). Holdout F1@5 (split 0, seed 0) and the "
                        "choice: " + "; ".join(
                            f"{variants[n][0]}: " + ", ".join(f"({lr:g}, {l2:g}) → {v:.4f}"
                                                              for (lr, l2), v in sorted(s.items()))
                            + f" — **chosen lr {chosen[n][0]:g}, λ {chosen[n][1]:g}** "
                              f"({runs[n][0]['epochs']} epochs)" for n, s in tuning.items()) + ".")
        for view, results in views:
            heading = view.replace("new images", "new artists") if dataset == "lastfm" else view
            sections += ["", f"**{heading}**", "", table(results, variants, view)]
            if any(r is None for rs in results.values() for r in rs):
                sections += ["", "(Too few posts in this view for the paired test.)"]
                continue
            best, test = paired(results, ours)
            sections += ["", f"Paired t-test, {ours} vs the best baseline ({best}) on per-post F1@5 over "
                         f"{describe_test(test)}."]
            for other in ("MP-u", MIXTURE):  # the paper's premise (vs MP-u); the count mixture
                if best != other:
                    sections[-1] += f" Against {other}: {describe_test(paired(results, ours, other)[1])}."
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
    name="cnn_permlp",
    title="CNN-PerMLP and its baselines on MovieLens posters and Last.fm-2k (F1/P/R@K, shared grid, seeds)",
    run=run_section, data=("movielens_posters", "lastfm_2k"), make="bench-cnn-permlp",
    paths=P.TRAINING + P.EVALUATION + P.model("cnn_permlp") + P.config("cnn_permlp_posters.yaml")
    + P.config("cnn_permlp_lastfm.yaml"),
    options={"datasets": ["posters", "lastfm"], "seeds": 3, "set": [], "variants": sorted(POSTERS), "grid_points": 0,
             "widen": 1},
    quick={"seeds": 1, "variants": ["cnn_permlp", "pitf"], "grid_points": 1, "widen": 0})]
