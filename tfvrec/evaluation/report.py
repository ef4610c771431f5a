"""Results tables and ``metrics.json``: how a run's figures are printed and stored."""
import json
import math
import os
import tempfile
from typing import List, Mapping, Optional, Sequence

from tfvrec.evaluation import metrics as metrics_lib
from tfvrec.evaluation import significance
from tfvrec.evaluation.results import EvalResult, json_safe

_DISPLAY = {"hr": "HR", "ndcg": "nDCG", "precision": "P", "recall": "R", "f1": "F1"}


def display_name(metric: str) -> str:
    """``hr@5`` -> ``HR@5``, ``ndcg@20`` -> ``nDCG@20``, ``auc`` -> ``AUC``."""
    prefix, _, k = metric.partition("@")
    return f"{_DISPLAY[prefix]}@{k}" if k and prefix in _DISPLAY else metric.upper()


def table_columns(eval_config):
    """The metric columns of a run's table, in order (``eval.table_metrics`` × ``eval.ks``, AUC once): the
    first decides (its 95% interval and the paired tests are on it)."""
    return [m if m == "auc" else f"{m}@{k}" for m in eval_config.table_metrics
            for k in (eval_config.ks if m != "auc" else [0])]


def _metric_order(name):
    prefix, _, k = name.partition("@")
    if prefix in metrics_lib.METRIC_PREFIXES and k.isdigit():
        return (0, metrics_lib.METRIC_PREFIXES.index(prefix), int(k), name)
    return (1, 0, 0, name)  # auc and any other figure after the cut-off metrics


def format_table(results: List[EvalResult], title: str = "", row_labels: Optional[Sequence[str]] = None,
                 metrics: Optional[Sequence[str]] = None, digits: int = 4) -> str:
    """A Markdown-style pipe table (readable as plain text), one row per result.

    Each row names its protocol, e.g. ``sampled:100, 10 repeats: mean ± std``, and each
    figure of a repeated protocol is printed as ``mean ± std`` (across repeats); so no
    figure can be read without the protocol that produced it. Where the results carry
    confidence intervals (`tfvrec.evaluation.comparison.compare`), the first metric
    column also shows its 95% interval over users, and a last column the p-value of the
    paired test of the first row against each other row on that metric. ``metrics``
    picks and orders the columns (default: every metric, grouped by metric then
    cut-off, AUC last).
    """
    results = list(results)
    if row_labels is not None and len(row_labels) != len(results):
        raise ValueError(f"{len(row_labels)} row labels for {len(results)} results")
    if metrics is None:
        metrics = sorted({name for result in results for name in result.metrics}, key=_metric_order)
    metrics = list(metrics)
    headline = metrics[0] if metrics else None
    with_ci = headline is not None and any(headline in r.ci for r in results)
    with_p = with_ci and any(headline in r.comparison for r in results)
    header = ([] if row_labels is None else ["model"]) + ["protocol", "users"] + [display_name(m) for m in metrics]
    if with_ci:
        header.insert(header.index(display_name(headline)) + 1, f"{display_name(headline)} 95% CI")
    if with_p:
        header.append(f"p ({display_name(headline)}, paired t)")
    rows = []
    for index, result in enumerate(results):
        cells = [] if row_labels is None else [str(row_labels[index])]
        cells += [result.describe_protocol(), str(result.num_users)]
        for name in metrics:
            if name not in result.metrics:
                cells.append("—")
            elif result.repeats > 1:
                cells.append(f"{result.metrics[name]:.{digits}f} ± {result.std.get(name, math.nan):.{digits}f}")
            else:
                cells.append(f"{result.metrics[name]:.{digits}f}")
            if with_ci and name == headline:
                low, high = result.ci.get(name, (None, None))
                cells.append("—" if low is None else f"[{low:.{digits}f}, {high:.{digits}f}]")
        if with_p:
            test = result.comparison.get(headline)
            cells.append("(reference)" if not test else significance.format_p(test.get("p_value")))
        rows.append(cells)
    widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
    lines = [title] if title else []
    lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(header, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    if with_p:
        lines.append(f"p: two-sided paired t-test over users of the first row against each row, on "
                     f"{display_name(headline)} (per-user values averaged over repeats, same candidates); "
                     "95% CI: t interval of the mean over users.")
    return "\n".join(lines)


def write_metrics_json(path: str, results: List[EvalResult], extra: Optional[Mapping] = None) -> None:
    """Write ``{"results": [EvalResult.to_dict(), ...], **extra}`` atomically (temp file + rename).

    Readers (dashboards, the benchmark report) never see a half-written file, and a crash
    leaves the previous file intact. Non-finite figures are written as ``null`` so the
    file stays strict JSON.
    """
    payload = {"results": [result.to_dict() for result in results]}
    for key, value in (extra or {}).items():
        if key in payload:
            raise ValueError(f"extra may not override the {key!r} key")
        payload[key] = json_safe(value)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(payload, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def read_metrics_json(path: str) -> List[EvalResult]:
    """The results of a file written by :func:`write_metrics_json`."""
    with open(path) as f:
        return [EvalResult.from_dict(entry) for entry in json.load(f)["results"]]
