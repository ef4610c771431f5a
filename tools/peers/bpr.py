"""Section ``peers_bpr`` — point 1: BPR-MF on Flickr F.S against cornac's and implicit's BPR, tuned and timed alike.

Contenders: tfvrec's BPR-MF recipe (``configs/bpr_flickr_fs.yaml``: BPR-Opt by LearnBPR's plain SGD), cornac
3.0.1's BPR and implicit 0.7.3's CPU BPR (k = 64 each); beside them, for where the gap was, the earlier Adam
recipe (``configs/bpr_flickr_fs_retrieval.yaml``) with the retrieval objective and with BPR-Opt (its own recipe,
not on the grid, not timed). Every contender trains on the same interactions — likes_train.tsv minus one like
per user (the train holdout, ``tfvrec.data.splits``) — and is selected the same way (`select_and_time`):

- **the same grid**: per-pair SGD step lr × λ (options ``lrs``, ``lams``; 3 × 3), tfvrec's through ``--set``
  overrides of its config (``trainer.learning_rate = lr × batch``: the loss is a batch mean; ``model.bpr.l2 =
  λ / 2``); when a contender's winner sits on an edge of the grid, that axis gets one more value outward
  (`peers.grid_search`), at most ``widenings`` times;
- **the same early stopping on the same holdout**: HR@5 at 100 sampled negatives on the train holdout after
  every epoch, by tfvrec's own validation function (`peers.holdout_rule`), the best epoch kept, patience that of
  tfvrec's config, at most ``max_epochs`` epochs for everyone — tfvrec by its trainer, the peers trained in chunks
  of ``chunk`` epochs that continue from their factors (cornac's ``fit`` keeps its factors, implicit's too;
  `peers.early_stopped`);
- **the same timing**: each contender's selected point trained afresh to its stopping epoch ``timing_repeats``
  times at one thread (cornac seeded, which cornac runs on one thread; implicit ``num_threads=1``; tfvrec
  ``runtime.threads=1`` in its own process, pinned to one CPU) and as many times at all cores (cornac unseeded,
  implicit ``num_threads=0``, tfvrec's default): median and min–max per setting, ratios of medians at the same
  setting; and the time tfvrec needs to reach cornac's holdout HR@5 (issue 31's acceptance).

All rows are then scored by tfvrec's evaluator in one table on likes_val.tsv (the reported split, never used for
selection; same exclusions, same sampled candidates, 10 repeats; paired t-test over users against the best peer).

Point 3 rides in the same table: HASC (``configs/hasc_flickr_fs.yaml``, U+S+C aspects) with P, W initialised
from the tfvrec BPR-MF run with the highest holdout HR@5 (D = 64 to match it), scored on the same candidates.
"""
import os
import time
import warnings

import numpy as np

from harness import Section, keyed, quick_sets
from harness import paths as P
from harness import toy
from peers import (THREADS, FactorScorer, early_stopped, format_spread, grid_search, holdout_rule, log,
                   median_ratio, ratio, seconds_to_reach, spread, tfvrec_timed, timed)

TITLE = "BPR-MF against cornac and implicit on Flickr F.S, and HASC on the strongest BPR-MF"
PEERS = (("cornac BPR", "cornac"), ("implicit BPR", "implicit"))  # (contender, package)
TFVREC = "tfvrec BPR-MF (BPR-Opt, SGD; selected on the grid)"
# The same options for every BPR section: the grid (per-pair step × λ), its widening budget, the epoch budget,
# the chunk the peers are evaluated after, the timed runs per thread setting.
OPTIONS = {"lrs": [0.025, 0.05, 0.1], "lams": [0.003, 0.01, 0.03], "widenings": 2, "max_epochs": 100, "chunk": 1,
           "timing_repeats": 3, "repeats": 10}
QUICK = {"lrs": [0.05], "lams": [0.01], "widenings": 0, "max_epochs": 3, "timing_repeats": 1, "repeats": 1}


class Interactions:
    """The training interactions of every contender, with each peer's input made once (outside its timings)."""

    def __init__(self, train, num_users, num_items, seed):
        self.users, self.items = train["user"].to_numpy(), train["item"].to_numpy()
        self.num_users, self.num_items, self.seed = num_users, num_items, seed
        self._cornac = self._csr = None

    def __len__(self):
        return len(self.users)

    def cornac(self):
        if self._cornac is None:
            import cornac
            triples = [(str(u), str(i), 1.0) for u, i in zip(self.users, self.items)]
            self._cornac = cornac.data.Dataset.from_uir(triples, seed=self.seed)
        return self._cornac

    def csr(self):
        if self._csr is None:
            import scipy.sparse as sp
            self._csr = sp.csr_matrix((np.ones(len(self), np.float32), (self.users, self.items)),
                                      shape=(self.num_users, self.num_items))
            self._csr.data[:] = 1.0
        return self._csr


class CornacBPR:
    """cornac's BPR, trained on in chunks: a second ``fit`` keeps the factors of the first (cornac 3.0.1's
    ``_init`` only draws factors that are None). ``threads`` "one": seeded (cornac then runs one thread);
    "all": unseeded, every core."""
    package = "cornac"

    def __init__(self, data, lr, lam, threads="one", k=64):
        import cornac
        self.data, self.k = data, k
        seed = data.seed if threads == "one" else None
        self.model = cornac.models.BPR(k=k, max_iter=1, learning_rate=lr, lambda_reg=lam, seed=seed, num_threads=0,
                                       verbose=False)

    def train(self, epochs):
        """``epochs`` more epochs: the seconds of ``fit`` alone."""
        dataset = self.data.cornac()
        self.model.max_iter = epochs
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Model is already fitted. Re-fitting will overwrite": it continues
            self.model.fit(dataset)
        return time.perf_counter() - start

    def scorer(self):
        data, model, k = self.data.cornac(), self.model, self.k
        users = np.zeros((self.data.num_users, k), np.float32)
        items = np.zeros((self.data.num_items, k), np.float32)
        bias = np.full(self.data.num_items, -1e9)  # an item cornac never saw in training ranks last
        for raw, idx in data.uid_map.items():
            users[int(raw)] = model.u_factors[idx]
        for raw, idx in data.iid_map.items():
            items[int(raw)] = model.i_factors[idx]
            bias[int(raw)] = model.i_biases[idx]
        return FactorScorer(users, items, bias)


class ImplicitBPR:
    """implicit's CPU BPR, trained on in chunks: ``fit`` keeps existing factors; its random state is a
    Generator, so that each chunk draws new samples (an int seed would restart the same stream every chunk).
    ``threads`` "one": ``num_threads=1``; "all": ``num_threads=0`` (every core)."""
    package = "implicit"

    def __init__(self, data, lr, lam, threads="one", k=64):
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        self.data = data
        self.model = BayesianPersonalizedRanking(factors=k - 1, learning_rate=lr, regularization=lam, iterations=1,
                                                 random_state=np.random.default_rng(data.seed),
                                                 verify_negative_samples=True,
                                                 num_threads=1 if threads == "one" else 0)

    def train(self, epochs):
        matrix = self.data.csr()
        self.model.iterations = epochs
        start = time.perf_counter()
        self.model.fit(matrix, show_progress=False)
        return time.perf_counter() - start

    def scorer(self):
        # implicit keeps the item bias as the last factor (users carry a constant 1 there).
        return FactorScorer(np.array(self.model.user_factors), np.array(self.model.item_factors))


PEER_MODELS = {"cornac BPR": CornacBPR, "implicit BPR": ImplicitBPR}


def peer_fit(model_class, data, evaluate, max_epochs, patience, chunk):
    """``fit(lr, lam) -> (holdout value, Stopped)`` of a peer for `grid_search`: one-thread (seeded) training in
    chunks, stopped early on the holdout."""
    def fit(lr, lam):
        model = model_class(data, lr, lam, "one")

        def train(epochs):
            model.train(epochs)
            return model.scorer()
        stopped = early_stopped(train, evaluate, max_epochs, patience, chunk)
        log(f"  stopped after {stopped.epochs} epochs, best epoch {stopped.epoch}")
        return stopped.value, stopped
    return fit


def tfvrec_fit(ctx, make_config, evaluate):
    """``fit(lr, lam) -> (holdout value, (model, Trained))`` of tfvrec's BPR-MF for `grid_search`: the run of
    ``make_config(lr, lam)`` (trained unless there), its best epoch judged by the same ``evaluate``."""
    def fit(lr, lam):
        trained = ctx.trained(make_config(lr, lam))
        model = trained.model()
        return evaluate(model), (model, trained)
    return fit


def grid_sets(config, lr, lam, max_epochs):
    """tfvrec's BPR-MF at per-pair step ``lr`` and λ ``lam`` over ``config``'s: ``--set`` overrides (empty at the
    config's own point)."""
    t = config.trainer
    sets = []
    if not np.isclose(lr * t.batch_size, t.learning_rate):
        sets.append(f"trainer.learning_rate={lr * t.batch_size:g}")
    if not np.isclose(lam / 2, config.model.bpr.l2):
        sets.append(f"model.bpr.l2={lam / 2:g}")
    if max_epochs != t.epochs:
        sets.append(f"trainer.epochs={max_epochs}")
    return sets


def config_point(config):
    """``(per-pair lr, λ)`` a BPR-MF config holds."""
    return config.trainer.learning_rate / config.trainer.batch_size, 2 * config.model.bpr.l2


def pairs_per_epoch(config, steps=None):
    t = config.trainer
    return (steps or 0) * t.batch_size * t.negatives_per_positive


def select_and_time(ctx, config, dataset, data, evaluate, make_config, notes):
    """Every contender on the same grid with the same early stopping, then its selected point timed at one
    thread and at all cores. ``make_config(lr, lam)``: tfvrec's run config at a grid point. Returns
    ``{contender: Selected}``."""
    opt = ctx.opt
    patience = config.trainer.early_stopping_patience
    out = {}
    for name, package in PEERS:
        if not ctx.has(package):
            ctx.skip(name, package)
            continue
        choice = grid_search(name, peer_fit(PEER_MODELS[name], data, evaluate, opt("max_epochs"), patience,
                                            opt("chunk")), opt("lrs"), opt("lams"), notes, opt("widenings"))
        stopped = choice.payload
        times = {}
        for threads in THREADS:
            def once():
                model = PEER_MODELS[name](data, choice.lr, choice.lam, threads)
                return model.train(stopped.epoch)
            times[threads] = timed(once, opt("timing_repeats"))
            log(f"{name} at {THREADS[threads]}: {format_spread(times[threads])} s to epoch {stopped.epoch}")
        out[name] = Selected(name, choice, stopped.scorer, stopped.epoch, times, len(data) * stopped.epoch, None)
    choice = grid_search("tfvrec BPR-MF", tfvrec_fit(ctx, make_config, evaluate), opt("lrs"), opt("lams"), notes,
                         opt("widenings"))
    model, trained = choice.payload
    state = trained.state
    epoch = state.best_epoch or state.completed_epochs
    times, histories = {}, {}
    for threads in THREADS:
        runs = [tfvrec_timed(ctx, trained.config, threads, epoch, f"timed-{threads}-{k}")
                for k in range(opt("timing_repeats"))]
        times[threads], histories[threads] = [s for s, _ in runs], [h for _, h in runs]
        log(f"tfvrec BPR-MF at {THREADS[threads]}: {format_spread(times[threads])} s to epoch {epoch}")
    out[TFVREC] = Selected(TFVREC, choice, model, epoch, times, pairs_per_epoch(config, state.steps_per_epoch) * epoch,
                           (trained, histories))
    return out


class Selected:
    """A contender's selected grid point (`GridChoice`), its scorer, stopping epoch, timed seconds per thread
    setting (``{"one": [...], "all": [...]}``), pairs trained to that epoch, and (tfvrec) its run and the
    timed runs' histories."""

    def __init__(self, name, choice, scorer, epoch, times, pairs, tfvrec):
        self.name, self.choice, self.scorer, self.epoch = name, choice, scorer, epoch
        self.times, self.pairs, self.tfvrec = times, pairs, tfvrec


def digits(times):
    """Decimals for a contender's seconds: 2 below 10 s, else 1."""
    return 2 if max(max(v) for v in times.values()) < 10 else 1


def timing_lines(selected, reference="cornac BPR"):
    """The timing table: per contender and thread setting, the median (min–max) of the timed runs to the
    stopping epoch, the ratio of medians to ``reference`` at the same setting, pairs/s at the median."""
    ref = selected.get(reference)
    lines = [f"| contender | threads | stopping epoch | training s: median (min–max, runs) | ratio to {reference} "
             "(medians, same threads) | pairs/s (median) | selected point |", "|---|---|---|---|---|---|---|"]
    for name, s in selected.items():
        for threads, text in THREADS.items():
            median = spread(s.times[threads])[0]
            lines.append(f"| {name} | {text} | {s.epoch} | {format_spread(s.times[threads], digits(s.times))} | "
                         f"{median_ratio(s.times[threads], ref.times[threads] if ref else None)} | "
                         f"{s.pairs / max(median, 1e-9):,.0f} | lr {s.choice.lr:g}, λ {s.choice.lam:g} |")
    return lines


def time_to_quality_lines(selected, reference="cornac BPR"):
    """Issue 31's acceptance: the training seconds tfvrec needs to reach ``reference``'s holdout HR@5 (its own
    per-epoch validation, the same rule) against ``reference``'s time to its stopping epoch, per thread setting."""
    if reference not in selected or TFVREC not in selected:
        return [f"Time to quality: not measured ({reference} did not run)."]
    ref, ours = selected[reference], selected[TFVREC]
    target = ref.choice.value
    lines = [f"Time to {reference}'s quality: its holdout HR@5 at its selected point is {target:.4f} (epoch "
             f"{ref.epoch}); tfvrec's seconds until its own per-epoch holdout HR@5 (the same validation) first "
             "reached it, in each timed run (validation time included):", "",
             f"| threads | {reference} s: median (min–max) | tfvrec s to reach it: median (min–max) | epoch | "
             "ratio (medians) | tfvrec ≤ cornac |", "|---|---|---|---|---|---|"]
    for threads, text in THREADS.items():
        reached = [seconds_to_reach(h, target) for h in ours.tfvrec[1][threads]]
        if any(s is None for s, _ in reached):
            lines.append(f"| {text} | {format_spread(ref.times[threads], digits(ref.times))} | not reached by "
                         f"epoch {ours.epoch} | — | — | no |")
            continue
        seconds = [s for s, _ in reached]
        verdict = "yes" if spread(seconds)[0] <= spread(ref.times[threads])[0] else "no"
        lines.append(f"| {text} | {format_spread(ref.times[threads], digits(ref.times))} | "
                     f"{format_spread(seconds, digits(ours.times))} | "
                     f"{', '.join(sorted({str(e) for _, e in reached}))} | "
                     f"{median_ratio(seconds, ref.times[threads])} | {verdict} |")
    return lines


def selection_lines(selected, config_file, config):
    """Per contender: its grid (with widenings) and the selected point; and whether tfvrec's shipped config holds
    the point its own selection chose."""
    lines = [f"- {name}: {s.choice.describe()}; holdout HR@5 {s.choice.value:.4f} at epoch {s.epoch}"
             for name, s in selected.items()]
    if TFVREC in selected:
        lr, lam = config_point(config)
        chosen = selected[TFVREC].choice
        same = np.isclose(lr, chosen.lr) and np.isclose(lam, chosen.lam)
        lines.append(f"- configs/{config_file} holds lr {lr:g}, λ {lam:g}: "
                     + ("the point tfvrec's own selection chose." if same else
                        f"**not** the point tfvrec's own selection chose (lr {chosen.lr:g}, λ {chosen.lam:g})."))
    return lines


# label -> (config, model.bpr.loss): the earlier Adam recipe, beside the grid (its own recipe, not timed)
TFVREC_ROWS = {
    "tfvrec BPR-MF (BPR-Opt, Adam)": ("bpr_flickr_fs_retrieval.yaml", "logistic"),
    "tfvrec BPR-MF (retrieval, Adam)": ("bpr_flickr_fs_retrieval.yaml", "retrieval"),
}
# Point 3: HASC on the strongest tfvrec BPR-MF (highest holdout HR@5) — the shipped HASC recipe with its
# P, W taken from that run, so D follows it (64; the shipped recipe's own init is a D=30 BPR-Opt run).
HASC_LABEL = "tfvrec HASC on the strongest tfvrec BPR-MF"
HASC_SETS = ["model.hasc.embedding_dim=64"]


def trained_run(ctx, config):
    """``config``'s run (trained unless there): ``(model, train seconds, pairs, epochs, Trained)``."""
    trained = ctx.trained(config)
    t = config.trainer
    pairs = trained.steps * t.batch_size * t.negatives_per_positive
    return trained.model(), trained.train_seconds, pairs, trained.epochs, trained


def hasc_run(ctx, bpr_dir):
    sets = HASC_SETS + [f"model.hasc.bpr_run={bpr_dir}", "trainer.verbose=2", "eval.baselines=[]"] + \
        (quick_sets() if ctx.quick else [])
    config = toy.config(ctx, "hasc_flickr_fs.yaml", sets)
    config.runtime.model_dir = ctx.run_dir(keyed("hasc-on-" + os.path.basename(bpr_dir), sets))
    return trained_run(ctx, config)


def holdout_data(config):
    """The data set of ``config`` with its train holdout carved, the training interactions every contender
    sees, and the holdout rule: ``(dataset, Interactions, evaluate)``."""
    from tfvrec import runs
    from tfvrec.data import splits
    dataset = runs.prepare_dataset(config)  # the splits of the runs (the train holdout carved)
    holdout = splits.validation_frame(config, dataset)
    data = Interactions(dataset.split("train"), dataset.num_users, dataset.num_items, config.runtime.seed)
    return dataset, data, holdout_rule(config, dataset, holdout)


def side_by_side(scorers, settings, dataset, split, config, repeats):
    """Every scorer on ``split`` in one call (same candidates), best peer first: the metrics table, the
    contender table (HR@5, ratio to the best peer, settings), the best peer's name (None when no peer ran) and
    the users judged."""
    from tfvrec.evaluation import evaluator, report
    order = sorted(scorers)
    heldout = evaluator.heldout_by_user(dataset.split(split))
    rows = evaluator.evaluate_scorers({n: scorers[n] for n in order}, dataset, heldout, ["sampled:100", "sampled:1000"],
                                      [5, 10], repeats, config.eval.seed, judged=split)
    by_name = {}
    for name, result in rows:
        by_name.setdefault(name, []).append(result)
    peers = [name for name, _ in PEERS if name in by_name]
    best_peer = max(peers, key=lambda n: by_name[n][0].metrics["hr@5"]) if peers else None
    ranked = ([best_peer] if best_peer else []) + [n for n in order if n != best_peer]
    compared = evaluator.comparison.compare([(n, r) for k in range(2) for n in ranked for r in [by_name[n][k]]])
    table = report.format_table([r for _, r in compared], row_labels=[n for n, _ in compared],
                                metrics=["hr@5", "ndcg@5", "hr@10"])
    reference = by_name[best_peer][0].metrics["hr@5"] if best_peer else None
    lines = ["| contender | HR@5 (N=100) | ratio to the best peer | settings |", "|---|---|---|---|"]
    for name in ranked:
        value = by_name[name][0].metrics["hr@5"]
        lines.append(f"| {name} | {value:.4f} ± {by_name[name][0].std['hr@5']:.4f} | {ratio(value, reference)} | "
                     f"{settings[name]} |")
    return table, "\n".join(lines), best_peer, len(heldout)


def method_text(ctx, config):
    """What was tuned and how, the same for every BPR section."""
    opt = ctx.opt
    return (f"every contender on the same grid — per-pair SGD step lr {{{', '.join(f'{v:g}' for v in opt('lrs'))}}} "
            f"× λ {{{', '.join(f'{v:g}' for v in opt('lams'))}}}, k = 64, one more value outward on an axis whose "
            f"edge holds the winner (at most {opt('widenings')} widenings) — with the same early stopping: holdout "
            f"HR@5 (N=100, tfvrec's validation function) after every {opt('chunk')} epoch(s), patience "
            f"{config.trainer.early_stopping_patience} epochs, at most {opt('max_epochs')} epochs, the best epoch "
            "kept (the peers train on from their factors between evaluations; grid runs single-threaded and "
            "seeded). Each selected point is then trained afresh to its stopping epoch "
            f"{opt('timing_repeats')}× at each thread setting: one thread (cornac seeded, implicit num_threads=1, "
            "tfvrec runtime.threads=1 pinned to one CPU) and all cores (cornac unseeded, implicit num_threads=0, "
            "tfvrec's default). tfvrec's times include its per-epoch holdout validation and checkpoints; the peers' "
            "are their fit calls alone.")


def run(ctx):
    import bench_bpr_flickr
    import bench_retrieval
    from tfvrec.evaluation import evaluator
    extra = list(ctx.opt("set"))
    config = bench_bpr_flickr.shipped_config(ctx, extra)
    dataset, data, evaluate = holdout_data(config)
    notes = []

    def make_config(lr, lam):
        return bench_bpr_flickr.shipped_config(ctx, extra + grid_sets(config, lr, lam, ctx.opt("max_epochs")))
    selected = select_and_time(ctx, config, dataset, data, evaluate, make_config, notes)
    scorers = {name: s.scorer for name, s in selected.items()}
    settings = {name: f"lr {s.choice.lr:g}, λ {s.choice.lam:g}, epoch {s.epoch} (holdout {s.choice.value:.4f})"
                for name, s in selected.items()}
    ours = selected[TFVREC].tfvrec[0]
    holdout_values = {TFVREC: (selected[TFVREC].choice.value, ours.dir)}
    for label, (config_file, loss) in TFVREC_ROWS.items():
        model, _, _, epochs, trained = trained_run(ctx, bench_retrieval.flickr_run(ctx, loss).config)
        scorers[label] = model
        holdout_values[label] = (evaluate(model), trained.dir)
        t = trained.config.trainer
        settings[label] = (f"configs/{config_file}: {t.optimizer}, lr {t.learning_rate:g} per batch of "
                           f"{t.batch_size}, l2 {trained.config.model.bpr.l2:g}; {epochs} epochs (its own recipe, "
                           f"not on the grid; holdout {holdout_values[label][0]:.4f})")
    strongest = max(holdout_values, key=lambda n: holdout_values[n][0])
    scorers[HASC_LABEL], _, _, epochs, _ = hasc_run(ctx, holdout_values[strongest][1])
    settings[HASC_LABEL] = (f"configs/hasc_flickr_fs.yaml with {', '.join(HASC_SETS)} and P, W from the run of "
                            f"{strongest} (the highest holdout HR@5); {epochs} epochs")
    table, contenders, best_peer, users = side_by_side(scorers, settings, dataset, "validation", config,
                                                       ctx.opt("repeats"))
    holdout_users = len(evaluator.heldout_by_user(dataset.split("validation")))
    against = f"p: paired t-test over users against the best peer, {best_peer}" if best_peer else \
        "no peer ran: p against the first row"
    return "\n".join([
        f"## {TITLE}", "",
        "Same training interactions for every contender (likes_train.tsv minus the train holdout); "
        + method_text(ctx, config), "",
        f"Selected on the holdout: all rows scored by tfvrec's evaluator in one table on likes_val.tsv "
        f"({holdout_users:,} users; same exclusions and candidates; {against}).", "",
        table, "", contenders, "",
        "Selection (holdout HR@5, N=100):", "", *selection_lines(selected, bench_bpr_flickr.CONFIG, config), "",
        "Training time of each selected point, trained afresh to its stopping epoch:", "",
        *timing_lines(selected), "", *time_to_quality_lines(selected), "",
        "pairs/s: training (user, positive, negative) pairs to the stopping epoch per second (tfvrec: batches × "
        "batch × negatives; peers: interactions × epochs).", "",
        "Grid points (holdout HR@5 at each contender's best epoch): " + ("; ".join(notes) or "none") + "."])


PATHS = P.TRAINING + P.EVALUATION + P.model("bpr") + P.model("hasc") + P.config("bpr_flickr_fs.yaml") + \
    P.config("bpr_flickr_fs_retrieval.yaml") + P.config("hasc_flickr_fs.yaml") + \
    ("tools/peers/__init__.py", "tools/bench_bpr_flickr.py", "tools/bench_retrieval.py")
SECTIONS = [Section(
    name="peers_bpr", title=TITLE, run=run, paths=PATHS, needs=("cornac", "implicit"), data=("flickr_fs",),
    runs="bench_peers", group="peers", make="bench-peers",
    options={"set": [], **OPTIONS}, quick=dict(QUICK))]
