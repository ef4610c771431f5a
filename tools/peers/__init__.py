"""The peers sections (tfvrec beside cornac, implicit, faiss and hnswlib; issue 18, "ahead of the peers"),
one module each, with what they share: `FactorScorer` (a peer's factors as a tfvrec scorer), and what makes the
comparison fair (issue 29 point 2) — every contender selected the same way on the train holdout, never on the
reported split: `grid_search` (the same grid, widened outward while the winner sits on an edge),
`early_stopped` (training in chunks, the holdout judged after each by `holdout_rule` — tfvrec's own validation
function — the best chunk kept, tfvrec's patience), and timed the same way: `THREADS` (one thread, all cores),
`timed`, `tfvrec_timed` (a fresh ``tfvrec train`` in its own process at a thread setting), `spread`,
`format_spread`, `median_ratio` (median and min–max of ≥ 3 runs, ratios of medians), `seconds_to_reach`
(tfvrec's time to a peer's quality).

``bpr`` (peers_bpr), ``bpr_posters`` (peers_bpr_posters), ``vbpr`` (peers_vbpr), ``ann`` (peers_ann),
``ann_real`` (peers_ann_real), ``serving`` (peers_serving); with ``features`` (tools/bench_features.py)
they are the ``peers`` group: ``python tools/bench.py --sections peers`` (``make bench-peers``). Without
the bench extra, their quick modes run tfvrec's side alone and say which peers did not run.
"""
import dataclasses
import os

import numpy as np

from harness import REPO, TOOLS, log, ratio  # noqa: F401  (shared by the peers modules)

RUNS = "bench_peers"  # the runs folder the peers sections share


class FactorScorer:
    """A peer's factors as a tfvrec scorer: score(u, i) = p_u · q_i (+ b_i)."""

    def __init__(self, users, items, bias=None):
        self.users, self.items = users, items
        self.bias = np.zeros(len(items)) if bias is None else bias
        self.num_items = len(items)

    def score(self, users, items):
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        return np.einsum("bd,bcd->bc", self.users[users], self.items[items]) + self.bias[items]

    def score_all(self, users):
        return self.users[np.asarray(users, np.int64)] @ self.items.T + self.bias


# -- the same selection for every contender ---------------------------------------------------------------

def _outward(values, low):
    """One more value beyond ``values``' low (``low=True``) or high end, by the ratio of the two outermost
    values there (a geometric grid stays geometric), rounded to 3 significant digits."""
    a, b = (values[0], values[1]) if low else (values[-1], values[-2])
    return float(f"{a * a / b:.3g}")


def widened(lrs, lams, best):
    """The grid with one more value outward on each axis whose edge holds ``best = (lr, λ)``: ``(lrs, lams,
    edges)``, ``edges`` naming what was widened ("lr low", "λ high", ...; empty: the winner is inside). An axis
    of one value is fixed (never widened)."""
    lrs, lams, edges = sorted(lrs), sorted(lams), []
    for name, values, value in (("lr", lrs, best[0]), ("λ", lams, best[1])):
        if len(values) < 2:
            continue
        if value == values[0]:
            values.insert(0, _outward(values, True))
            edges.append(f"{name} low")
        elif value == values[-1]:
            values.append(_outward(values, False))
            edges.append(f"{name} high")
    return lrs, lams, edges


@dataclasses.dataclass
class GridChoice:
    """A contender's selected grid point: holdout ``value`` and what ``fit`` returned with it (``payload``),
    the final grid axes, the points tried ``{(lr, λ): value}``, how many widenings ran and whether the winner
    still sits on an edge (the widening budget spent)."""
    lr: float
    lam: float
    value: float
    payload: object
    lrs: list
    lams: list
    tried: dict
    widenings: int
    on_edge: bool

    def describe(self):
        axes = f"lr {{{', '.join(f'{v:g}' for v in self.lrs)}}} × λ {{{', '.join(f'{v:g}' for v in self.lams)}}}"
        widen = f"widened {self.widenings}×" if self.widenings else "not widened"
        edge = "; the winner is still on an edge (widening budget spent)" if self.on_edge else ""
        return f"{len(self.tried)} points, {axes} ({widen}{edge}); selected lr {self.lr:g}, λ {self.lam:g}"


def grid_search(name, fit, lrs, lams, notes, widenings=2):
    """Fit ``fit(lr, lam) -> (holdout value, payload)`` at every point of ``lrs × lams``; while the best point
    sits on an edge of an axis (and at most ``widenings`` times), add one value outward on that axis
    (`widened`) and fit the new points. Only the best payload is kept. Appends a note per point; a `GridChoice`.
    """
    lrs, lams = sorted(lrs), sorted(lams)
    tried, best, rounds = {}, None, 0
    while True:
        for lr in lrs:
            for lam in lams:
                if (lr, lam) in tried:
                    continue
                value, payload = fit(lr, lam)
                tried[(lr, lam)] = value
                log(f"{name} lr={lr:g} λ={lam:g}: holdout {value:.4f}")
                notes.append(f"{name} lr={lr:g}, λ={lam:g}: {value:.4f}")
                if best is None or value > best[2]:
                    best = (lr, lam, value, payload)
        wider_lrs, wider_lams, edges = widened(lrs, lams, best[:2])
        if not edges or rounds == widenings:
            return GridChoice(best[0], best[1], best[2], best[3], lrs, lams, tried, rounds, bool(edges))
        log(f"{name}: the winner lr={best[0]:g} λ={best[1]:g} is on the grid's edge ({', '.join(edges)}): widening")
        lrs, lams, rounds = wider_lrs, wider_lams, rounds + 1


@dataclasses.dataclass
class Stopped:
    """A chunked training stopped early: the best chunk's holdout ``value``, its ``epoch`` (epochs trained
    when it was measured) and ``scorer``; ``history``: ``[(epochs, value)]`` after every chunk; ``epochs``:
    epochs trained in all."""
    value: float
    epoch: int
    scorer: object
    history: list
    epochs: int


def early_stopped(train, evaluate, max_epochs, patience, chunk=1):
    """Train in chunks of ``chunk`` epochs (``train(n)`` continues the training by ``n`` epochs and returns a
    scorer of the factors now, a copy), evaluate the holdout after each (``evaluate(scorer)``) and keep the
    best chunk: tfvrec's early stopping (`tfvrec.training.loop`), stopping once ``patience`` epochs (0: never)
    passed without a better value, or at ``max_epochs``. A `Stopped`."""
    best, done, history = None, 0, []
    while done < max_epochs:
        n = min(chunk, max_epochs - done)
        scorer = train(n)
        done += n
        value = evaluate(scorer)
        history.append((done, value))
        if best is None or value > best[0]:
            best = (value, done, scorer)
        elif patience and done - best[1] >= patience:
            break
    return Stopped(best[0], best[1], best[2], history, done)


def holdout_rule(config, dataset, holdout):
    """``evaluate(scorer) -> value``: the early stopping rule of ``config``'s tfvrec runs on ``holdout`` (the
    train holdout): `tfvrec.evaluation.engine.make_validation` itself (same users, candidates, metric)."""
    from tfvrec.evaluation import engine

    class Current:  # the validation function is made once, for whichever scorer is judged
        target = None

        def score(self, users, items):
            return self.target.score(users, items)

        def score_all(self, users):
            return self.target.score_all(users)

        def __getattr__(self, name):
            return getattr(self.target, name)

    current = Current()
    validate = engine.make_validation(config, dataset, current, holdout)
    metric = config.trainer.validation_metric

    def evaluate(scorer):
        current.target = scorer
        try:
            return float(validate().metrics[metric])
        finally:
            current.target = None
    return evaluate


# -- timing: matched threads, repeated, median and spread ---------------------------------------------------

# The thread settings every contender is timed at: (key, text). "one": one thread (cornac seeded, implicit
# num_threads=1, tfvrec runtime.threads=1 and its process pinned to one CPU); "all": every core (cornac unseeded,
# implicit num_threads=0, tfvrec's default).
THREADS = {"one": "one thread", "all": f"all {os.cpu_count()} cores"}


def spread(values):
    """``(median, min, max)`` of timed runs."""
    values = sorted(values)
    return float(np.median(values)), values[0], values[-1]


def format_spread(values, digits=1):
    """``"median (min–max, n runs)"``."""
    median, low, high = spread(values)
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f}, {len(values)} runs)"


def median_ratio(values, reference):
    """The ratio of the medians (table text, — without a reference)."""
    return ratio(spread(values)[0], spread(reference)[0] if reference else None)


def seconds_to_reach(history, target, metric="val_hr@5"):
    """A tfvrec run's training seconds until its holdout ``metric`` first reached ``target``: ``(seconds,
    epoch)`` from ``history`` (training_state.json's per-epoch entries: ``epoch_seconds``, validation
    included), or ``(None, None)`` when it never did."""
    total = 0.0
    for epoch, entry in enumerate(history, 1):
        total += entry["epoch_seconds"]
        if entry.get(metric, -1.0) >= target:
            return total, epoch
    return None, None


def tfvrec_timed(ctx, config, threads, epochs, name):
    """A fresh ``tfvrec train`` of ``config`` for ``epochs`` epochs in its own process (TensorFlow's thread
    pools are fixed when its runtime starts): ``threads`` "one" sets ``runtime.threads=1`` and pins the process
    to one CPU (its tf.data threads too), "all" leaves TensorFlow's default. The run keeps its per-epoch
    holdout validation (patience off: it trains exactly ``epochs``); the final evaluation is one quick pass.
    ``(train seconds, history)`` from its training_state.json."""
    import json
    import subprocess
    import sys

    from tfvrec import config as config_lib
    with ctx.scratch(name) as scratch:
        params = config_lib.write_params(config, os.path.join(scratch, "config"))
        sets = [f"runtime.model_dir={os.path.join(scratch, 'run')}", f"trainer.epochs={epochs}",
                "trainer.early_stopping_patience=0", "trainer.verbose=0", "trainer.tensorboard_summaries=false",
                "eval.baselines=[]", "eval.repeats=1", f"eval.protocols=[{config.trainer.validation_protocol!r}]",
                f"runtime.threads={1 if threads == 'one' else 0}"]
        command = [sys.executable, "-m", "tfvrec", "train", "--config", params] + \
            [a for s in sets for a in ("--set", s)]
        pin = None
        if threads == "one" and hasattr(os, "sched_setaffinity"):
            cpu = min(os.sched_getaffinity(0))
            pin = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
        subprocess.run(command, cwd=REPO, env=env, check=True, preexec_fn=pin, stdout=subprocess.DEVNULL)
        with open(os.path.join(scratch, "run", "training_state.json")) as f:
            state = json.load(f)
    return float(state["train_seconds"]), state["history"]


def timed(fit, repeats):
    """``fit()`` (one fresh training, returns its seconds) ``repeats`` times: the list of seconds."""
    return [fit() for _ in range(repeats)]
