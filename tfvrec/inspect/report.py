"""``tfvrec report``: one self-contained HTML page of what a run recommends, to look at.

At the top, the run's results table as training printed it (``metrics.json``: the model against
its baselines, the first metric's 95% interval and paired-test p-values) and an inline SVG plot
of HR@K and R@K for K = 1..20 of every row of that table (the model and each of
``eval.baselines``, on the run's first evaluation protocol). Then, per user of
the evaluated split: the images of their training history, the top-K recommended images —
as the run's export serves them (`tfvrec.inference`) — with scores and the held-out hits
outlined; each recommendation's explanation where the model has one (``ModelSpec.explain``:
HASC's aspect importance γ as bars, its top uploads by α and followees by β); for a content
model the nearest history item of each recommendation in the space of its index vectors.
Images are embedded (PNG data URIs): the page works offline, from any folder, with no
CDN. A data set without images gets tiles with ids and metadata, and the page says so.
"""
import html
import json
import os

import numpy as np
import tensorflow as tf

from tfvrec import atomic, registry
from tfvrec.errors import ConfigError
from tfvrec.evaluation import evaluator, protocols, significance
from tfvrec.evaluation.report import display_name, table_columns
from tfvrec.inference import Recommender
from tfvrec.inspect.pictures import Thumbnails, data_uri

CURVE_KS = tuple(range(1, 21))
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-top:1px solid #ddd;padding-top:12px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
figure{margin:0;width:112px;font-size:11px;text-align:center}
figure img{width:104px;height:104px;border:4px solid transparent;image-rendering:auto}
figure.hit img{border-color:#28c83c} img.mini{width:48px;height:48px;border:0} figure .id{font-family:monospace}
.label{font-size:12px;color:#555;margin:10px 0 4px}
.bar{height:7px;background:#1f77b4;margin:1px 0} .bars{text-align:left;font-size:10px}
.note{color:#a00;font-size:13px}
.tile-text{width:104px;height:104px;border:4px solid transparent;background:#eee;display:flex;
  align-items:center;justify-content:center;font-family:monospace;font-size:11px;word-break:break-all}
figure.hit .tile-text{border-color:#28c83c}
"""


def _e(value):
    return html.escape(str(value))


def pick_users(dataset, heldout, users=None, count=5, seed=0):
    """Rows of the users to show: ``users`` (data set ids), or ``count`` held-out users (seeded)."""
    if users:
        rows = []
        for user in users:
            found = np.flatnonzero(np.asarray(dataset.user_ids).astype(str) == str(user))
            if not len(found):
                raise ConfigError(f"--user {str(user)[:100]!r}: not a user of this run's data set "
                                  f"({os.path.join(dataset.path, 'users.tsv')})")
            rows.append(int(found[0]))
        return rows
    candidates = np.asarray(sorted(heldout))
    if len(candidates) > count:
        candidates = np.sort(np.random.default_rng(seed).choice(candidates, count, replace=False))
    return [int(u) for u in candidates]


def svg_curves(curves, title, width=420, height=240):
    """An inline SVG line plot of ``{label: [value at K = 1..20]}`` (no plotting library)."""
    left, bottom, top_margin, right = 44, 30, 22, 110
    top = max([max(v) for v in curves.values()] + [1e-9])
    top = float(np.ceil(top * 10) / 10) if top > 0.1 else float(np.ceil(top * 100) / 100)

    def x(k):
        return left + (k - 1) / (len(CURVE_KS) - 1) * (width - left - right)

    def y(v):
        return height - bottom - v / top * (height - bottom - top_margin)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(title)}">', f'<text x="{left}" y="14" font-size="13">{_e(title)}</text>',
             f'<line x1="{left}" y1="{y(0)}" x2="{x(20)}" y2="{y(0)}" stroke="#888"/>',
             f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{y(top)}" stroke="#888"/>']
    for k in (1, 5, 10, 15, 20):
        parts.append(f'<text x="{x(k)}" y="{height - 12}" font-size="10" text-anchor="middle">{k}</text>')
    for v in (0, top / 2, top):
        parts.append(f'<text x="{left - 4}" y="{y(v) + 3}" font-size="10" text-anchor="end">{v:.2f}</text>')
    parts.append(f'<text x="{(left + x(20)) / 2}" y="{height - 1}" font-size="10" text-anchor="middle">K</text>')
    for n, (label, values) in enumerate(curves.items()):
        colour = COLOURS[n % len(COLOURS)]
        points = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in zip(CURVE_KS, values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{x(20) + 6}" y="{top_margin + 14 * n + 8}" font-size="11" fill="{colour}">'
                     f'{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _results_table(run_dir, columns=()):
    """The run's table as training printed it: ``columns`` (the run's, `table_columns`; else every metric)
    in order, the first one's 95% interval over users and the p-value of each row's paired test against
    the first row of its protocol, on that first metric (``metrics.json`` holds them)."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return "<p class='note'>No metrics.json: the run has not been evaluated.</p>"
    data = json.load(open(path))
    results, labels = data.get("results", []), data.get("rows", [])
    metrics = [m for m in columns if any(m in r["metrics"] for r in results)]
    if not metrics:
        metrics = sorted({m for r in results for m in r["metrics"]}, key=lambda m: (m.split("@")[0], len(m), m))
        metrics = [m for m in metrics if m.split("@")[0] in ("hr", "recall", "precision", "ndcg", "auc", "f1")][:12]
    headline = metrics[0] if metrics else None
    with_ci = any(headline in r.get("ci95", {}) for r in results)
    with_p = any(headline in r.get("paired_test", {}) for r in results)
    head = "".join(f"<th>{_e(display_name(m))}</th>" + (f"<th>{_e(display_name(m))} 95% CI</th>"
                                                           if with_ci and m == headline else "") for m in metrics)
    if with_p:
        head += f"<th>p ({_e(display_name(headline))}, paired t)</th>"
    rows = []
    for label, result in zip(labels or [""] * len(results), results):
        cells = ""
        for m in metrics:
            cells += f"<td>{result['metrics'].get(m, float('nan')):.4f}</td>"
            if with_ci and m == headline:
                low, high = result.get("ci95", {}).get(m, (None, None))
                cells += "<td>—</td>" if low is None else f"<td>[{low:.4f}, {high:.4f}]</td>"
        if with_p:
            test = result.get("paired_test", {}).get(headline)
            cells += f"<td>{'(reference)' if not test else _e(significance.format_p(test.get('p_value')))}</td>"
        rows.append(f"<tr><td>{_e(label)}</td><td>{_e(result['protocol'])}</td>{cells}</tr>")
    note = (f"<p class='label'>p: two-sided paired t-test over users of the first row of each protocol against "
            f"each row, on {_e(display_name(headline))}; 95% CI: t interval of the mean over users.</p>"
            if with_p else "")
    return (f"<p class='label'>{_e(data.get('title', ''))}</p><table><tr><th>scorer</th><th>protocol</th>{head}"
            f"</tr>{''.join(rows)}</table>{note}")


class _Tiles:
    """HTML tiles of items: an embedded image, or the id and metadata where there is none."""

    def __init__(self, dataset, size=104):
        self.dataset = dataset
        self.thumbnails = Thumbnails(dataset, size=size)
        self.images = 0

    def tile(self, row, caption="", hit=False, extra=""):
        item = self.dataset.item_ids[row]
        css = "hit" if hit else ""
        if self.thumbnails.available:
            self.images += 1
            body = f'<img src="{data_uri(self.thumbnails.tile(row))}" alt="{_e(item)}" title="{_e(item)}">'
        else:
            tags = ", ".join(map(str, self.dataset.item_tags[row][:3])) if len(self.dataset.item_tags) else ""
            body = f'<div class="tile-text">{_e(item)}<br>{_e(tags)}</div>'
        return (f'<figure class="{css}">{body}<figcaption><span class="id">{_e(item)}</span>'
                f'{"<br>" + caption if caption else ""}{extra}</figcaption></figure>')


    def mini(self, row):
        """A small picture of an item (nothing without images)."""
        if not self.thumbnails.available:
            return ""
        self.images += 1
        item = _e(self.dataset.item_ids[row])
        return f'<br><img class="mini" src="{data_uri(self.thumbnails.tile(row))}" alt="{item}">'


def _explanation(explained):
    """One recommendation's explanation (``ModelSpec.explain``): weights as bars, then lines of text."""
    bars = "".join(f"{_e(name)} {value:.2f}<div class='bar' style='width:{max(1, int(value * 100))}px'></div>"
                   for name, value in explained.get("weights", {}).items())
    lines = "<br>".join(_e(line) for line in explained.get("lines", []))
    return f"<div class='bars'>{bars}</div>" + (f"<div class='bars'>{lines}</div>" if lines else "")


def build_report(run_dir, users=None, count=5, k=10, history=12):
    """The report page of run ``run_dir`` (an HTML string) and a summary dict."""
    rec = Recommender(run_dir)
    config, dataset, model = rec.config, rec.dataset, rec.model
    spec = registry.model_spec(config.model.name)
    judged = config.eval.split if config.eval.split in dataset.interactions else "validation"
    heldout = evaluator.heldout_by_user(dataset.split(judged)) if judged in dataset.interactions else {}
    rows = pick_users(dataset, heldout, users, count, config.eval.seed)
    exclude = evaluator.exclusions(dataset, {u: heldout.get(u, np.empty(0, np.int64)) for u in rows}, judged)
    seen = dataset.train_items_by_user()
    tiles = _Tiles(dataset)
    # Curves: every row of the results table (the model and each of eval.baselines), first protocol, K = 1..20.
    curves_html = ""
    if heldout:
        scorers = {config.model.name: model}
        scorers.update(evaluator.baseline_scorers(config.eval.baselines, dataset, config, heldout))
        all_exclude = evaluator.exclusions(dataset, heldout, judged)
        protocol = config.eval.protocols[0]
        pool = evaluator.candidate_pool(dataset, protocol)
        results = {name: protocols.evaluate(s, heldout, all_exclude, dataset.num_items, protocol, ks=CURVE_KS,
                                            repeats=1, seed=config.eval.seed, candidate_pool=pool)
                   for name, s in scorers.items()}
        curves_html = "".join(
            svg_curves({n: [r.metrics[f"{m}@{kk}"] for kk in CURVE_KS] for n, r in results.items()},
                       f"{label} on split '{judged}' ({protocol})") for m, label in (("hr", "HR@K"), ("recall", "R@K")))
    explain = registry.resolve(spec.explain) if spec.explain else None
    module = rec.module()
    parts = getattr(module, "parts", None)
    item_space = None
    if parts is not None and parts.embed_items is not None:  # a content model: its index vectors place any two items
        vectors = np.zeros((dataset.num_items, parts.item_vectors.shape[1]))
        vectors[dataset.item_index([str(i) for i in parts.item_ids])] = parts.item_vectors
        item_space = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sections = []
    for u in rows:
        also = [str(dataset.item_ids[i]) for i in exclude.get(u, [])]  # known items of earlier splits
        answer = module.signature_functions["serving_default"](
            user=tf.constant([str(dataset.user_ids[u])]), k=tf.constant(k, tf.int32),
            exclude=tf.constant([also], tf.string) if also else tf.zeros([1, 0], tf.string))
        ids = [i for i in answer["item_ids"].numpy()[0].astype(str) if i]
        recommended = dataset.item_index(ids) if ids else np.zeros(0, np.int64)
        top_scores = answer["scores"].numpy()[0][:len(ids)]
        hits = set(int(i) for i in heldout.get(u, ()))
        extras = [""] * len(recommended)
        if explain is not None and len(recommended):
            extras = [_explanation(e) for e in explain(model, dataset, [u] * len(recommended), recommended)]
        elif item_space is not None and len(seen[u]):
            history_rows = np.asarray(seen[u])
            for n, item in enumerate(recommended):
                nearest = history_rows[int(np.argmax(item_space[history_rows] @ item_space[item]))]
                extras[n] = (f"<div class='bars'>nearest in history: {_e(dataset.item_ids[nearest])}"
                             f"{tiles.mini(nearest)}</div>")
        history_html = "".join(tiles.tile(i) for i in seen[u][-history:])
        recommended_html = "".join(
            tiles.tile(i, caption=f"{s:.3f}" + (" · hit" if int(i) in hits else ""), hit=int(i) in hits, extra=x)
            for i, s, x in zip(recommended, top_scores, extras))
        sections.append(
            f"<h2>User {_e(dataset.user_ids[u])}</h2>"
            f"<div class='label'>Training history ({len(seen[u])} items; {min(history, len(seen[u]))} shown)</div>"
            f"<div class='row history'>{history_html}</div>"
            f"<div class='label'>Top {len(recommended)} recommendations (score; held-out hits outlined: "
            f"{len(hits & set(map(int, recommended)))} of {len(hits)} in split '{judged}')</div>"
            f"<div class='row recommended'>{recommended_html}</div>")
    note = "" if tiles.thumbnails.available else (
        "<p class='note'>This data set has no images: items are shown by id and tags.</p>")
    title = f"tfvrec report: {config.model.name} on {dataset.name} ({os.path.basename(os.path.abspath(run_dir))})"
    table = _results_table(run_dir, table_columns(config.eval))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>{note}{table}"
            f"<div class='row'>{curves_html}</div>{''.join(sections)}</body></html>")
    return page, {"users": len(rows), "images": tiles.images, "k": k, "has_images": tiles.thumbnails.available}


def write_report(run_dir, out, **options):
    page, summary = build_report(run_dir, **options)
    atomic.write_text(out, page)
    return summary


def run_cli(args):
    """``tfvrec report`` (its arguments: `tfvrec.inspect.cli`)."""
    if not os.path.exists(os.path.join(args.run, "params.yaml")):
        raise ConfigError(f"{args.run}: not a tfvrec run directory (no params.yaml)")
    if args.users < 1:
        raise ConfigError(f"--users {args.users}: must be ≥ 1")
    if args.k < 1:
        raise ConfigError(f"-k {args.k}: must be ≥ 1")
    summary = write_report(args.run, args.out, users=[args.user] if args.user else None, count=args.users, k=args.k)
    print(f"Wrote {args.out}: {summary['users']} users, top {summary['k']}, {summary['images']} images"
          + ("" if summary["has_images"] else " (the data set has no images: ids and tags shown)"))
