"""How a CNN-PerMLP run is evaluated (``ModelSpec.evaluation``): F1 / P / R @ K over posts.

Each test post (user, image, tags T+) gets every tag of the vocabulary ranked by the
scorer; with H the number of T+ in the top K, P@K = H / K and R@K = H / |T+|, both
averaged over the posts, and F1@K = 2 · P@K · R@K / (P@K + R@K) (eq. 12) of the
averages. K = 1..10. Every table has the run's model and the counting baselines of the
paper: MP (the training posts' most used tags) and MP-u (the user's most used tags in
training, ties and users without training posts by MP) and MP-u+i, a count mixture: the
user's training tag frequencies plus the item's (the tags the training posts gave it). Two views: every test post,
and the posts whose image no training post has ("new images", §4.3).

Validation (early stopping, tuning) uses the holdout posts carved from the training
posts, never the test posts.
"""
import os

import numpy as np

from tfvrec.errors import ConfigError
from tfvrec.evaluation import report
from tfvrec.evaluation.protocols import EvalResult

KS = tuple(range(1, 11))
TABLE_KS = (1, 3, 5, 10)
VIEWS = ("test posts", "test posts, new images")


def ranking_metrics(scores, true_tags, ks=KS):
    """``(metrics, per_post)``: P@K, R@K (means over posts), F1@K (eq. 12 of the means), and per
    post F1@K = 2H / (K + |T+|) (for paired tests). ``true_tags``: list of int arrays."""
    scores = np.asarray(scores, np.float64)
    n = len(true_tags)
    if n == 0:
        return {}, {}
    kmax = min(max(ks), scores.shape[1])
    # Ties broken by tag index (stable): a constant scorer ranks the vocabulary in order.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :kmax]
    relevant = np.zeros((n, kmax), bool)
    sizes = np.zeros(n)
    for r, tags in enumerate(true_tags):
        relevant[r] = np.isin(top[r], tags)
        sizes[r] = max(len(tags), 1)
    hits = np.cumsum(relevant, axis=1)
    metrics, per_post = {}, {}
    for k in ks:
        h = hits[:, min(k, kmax) - 1]
        p, r = float(np.mean(h / k)), float(np.mean(h / sizes))
        metrics[f"precision@{k}"], metrics[f"recall@{k}"] = p, r
        metrics[f"f1@{k}"] = 2 * p * r / (p + r) if p + r else 0.0
        per_post[f"f1@{k}"] = 2 * h / (k + sizes)
    return metrics, per_post


def result(scores, true_tags, view, info=None):
    metrics, per_post = ranking_metrics(scores, true_tags)
    return EvalResult(protocol=view, repeats=1, num_users=len(true_tags), metrics=metrics,
                      std={m: 0.0 for m in metrics}, info=dict(info or {}, unit="posts", ks=list(KS)),
                      users=np.arange(len(true_tags)), per_user=per_post)


def popularity_scores(posts, users):
    """MP ``[n, |T|]``: tag counts over the training posts (the same row for everyone)."""
    counts = np.zeros(posts.num_tags)
    for r in posts.rows("train"):
        counts[posts.tags[r]] += 1
    return np.tile(counts, (len(users), 1))


def user_popularity_scores(posts, users):
    """MP-u ``[n, |T|]``: the user's training tag counts, MP (scaled below 1) breaking ties."""
    train = posts.rows("train")
    mp = popularity_scores(posts, [0])[0]
    by_user = {}
    for r in train:
        row = by_user.setdefault(int(posts.user[r]), np.zeros(posts.num_tags))
        row[posts.tags[r]] += 1
    tie = mp / (mp.max() + 1.0)
    return np.stack([by_user.get(int(u), np.zeros(posts.num_tags)) + tie for u in users]) if len(users) else \
        np.zeros((0, posts.num_tags))


def count_mixture_scores(posts, users, items):
    """MP-u+i ``[n, |T|]``, a count mixture that learns nothing: the user's training tag frequencies plus
    the item's (the tags the training posts — every other user's, a user has one post per item — gave
    it), each normalised to sum 1, equal weights; MP (scaled far below) breaking ties. On a new item it
    is MP-u's order. Last.fm holdout F1@5 (split 0): 0.3769 (raw counts summed 0.3116, item only 0.3043)."""
    def frequencies(key, ids):
        table = {}
        for r in posts.rows("train"):
            table.setdefault(int(key[r]), np.zeros(posts.num_tags))[posts.tags[r]] += 1
        rows = np.stack([table.get(int(x), np.zeros(posts.num_tags)) for x in ids])
        return rows / np.maximum(rows.sum(1, keepdims=True), 1.0)
    if not len(users):
        return np.zeros((0, posts.num_tags))
    mp = popularity_scores(posts, [0])[0]
    return frequencies(posts.user, users) + frequencies(posts.item, items) + mp / (mp.max() + 1.0) * 1e-6


BASELINES = {"MP": popularity_scores, "MP-u": user_popularity_scores}
ITEM_BASELINES = {"MP-u+i": count_mixture_scores}  # also read the post's item


def score_rows(model, rows):
    posts = model.posts
    return model.score_posts(posts.user[rows], posts.item[rows])


def evaluate_posts(scorers, posts, split="test"):
    """``[(scorer name, EvalResult)]`` for every view; ``scorers``: name → fn(rows) → scores."""
    rows = posts.rows(split)
    new = posts.new_image(rows)
    out = []
    for view, mask in zip(VIEWS, (np.ones(len(rows), bool), new)):
        chosen = rows[mask]
        if not len(chosen):
            continue
        truth = [posts.tags[r] for r in chosen]
        for name, fn in scorers.items():
            out.append((name, result(fn(chosen), truth, view, info={"split": split})))
    return out


def scorers_of(config, model):
    posts = model.posts
    scorers = {config.model.name: lambda rows: score_rows(model, rows)}
    for name, fn in BASELINES.items():
        scorers[name] = lambda rows, fn=fn: fn(posts, posts.user[rows])
    for name, fn in ITEM_BASELINES.items():
        scorers[name] = lambda rows, fn=fn: fn(posts, posts.user[rows], posts.item[rows])
    return scorers


# ----------------------------------------------------------------------------- the engine's hooks
def make_validation(config, dataset, model, validation):
    """Per-epoch validation on the holdout posts (``model.cnn_permlp.holdout_fraction``)."""
    posts = model.posts
    rows = posts.rows("holdout")
    if not len(rows):
        raise ConfigError("model.cnn_permlp.holdout_fraction leaves no holdout posts to validate on; raise it or "
                          "set trainer.validation_split: \"\" to train without validation")
    truth = [posts.tags[r] for r in rows]

    def evaluate_validation():
        return result(score_rows(model, rows), truth, "holdout posts")
    return evaluate_validation


def evaluate_run(config, dataset, model, note="", heldout_frame=None, heldout_name=None, protocol_names=None,
                 write=True, split="test"):
    if heldout_frame is not None:
        raise ConfigError("cnn_permlp is evaluated on its own leave-posts-out split (model.cnn_permlp.test_posts / "
                          "test_fraction); --heldout files of user–item pairs do not apply")
    posts = model.posts
    rows = evaluate_posts(scorers_of(config, model), posts, split)
    title = (f"{config.model.name} on {dataset.name}: {len(posts.rows(split))} {split} posts of "
             f"{len(set(posts.user[posts.rows(split)]))} users, {posts.num_tags} tags")
    for said in (note, getattr(model, "evaluation_note", "")):
        if said:
            title += f"; {said}"
    results, labels = [r for _, r in rows], [n for n, _ in rows]
    columns = [f"{m}@{k}" for m in ("f1", "precision", "recall") for k in TABLE_KS]
    if results:
        print(report.format_table(results, title=title, row_labels=labels, metrics=columns), flush=True)
    if write and results:
        path = os.path.join(config.runtime.model_dir, "metrics.json")
        report.write_metrics_json(path, results, extra={"title": title, "rows": labels, "model": config.model.name,
                                                            "dataset": dataset.name, "heldout": f"{split} posts"})
        print(f"Wrote {path}", flush=True)
    return rows
