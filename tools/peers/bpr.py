"""Section ``peers_bpr`` — point 1: BPR-MF on Flickr F.S against cornac's and implicit's BPR.

tfvrec's BPR-MF three ways: the shipped recipe (``configs/bpr_flickr_fs.yaml``: BPR-Opt by LearnBPR's
plain SGD at the peers' selected step and λ), and the earlier Adam recipe
(``configs/bpr_flickr_fs_retrieval.yaml``) with the retrieval objective and with BPR-Opt — which
shows where the gap to cornac was; cornac 3.0.1's BPR and implicit 0.7.3's BPR. Every contender
trains on the same interactions: likes_train.tsv minus
one like per user (the train holdout, ``tfvrec.data.splits``); the peers' grid points (learning rate ×
λ, k = 64, 100 epochs/iterations) are selected on that holdout by HR@5 at 100 sampled negatives — the
rule tfvrec's early stopping uses — never on the reported split. All rows are then scored by tfvrec's
evaluator in one table on likes_val.tsv (same exclusions, same sampled candidates, 10 repeats; paired
t-test over users against the best peer), with training wall times and pairs/s.

Point 3 rides in the same table: HASC (``configs/hasc_flickr_fs.yaml``, U+S+C aspects) with P, W
initialised from the tfvrec BPR-MF run with the highest holdout HR@5 (D = 64 to match it), scored on
the same candidates against the best peer and the BPR-MF it started from.
"""
import os
import time

import numpy as np

from harness import Section, keyed, quick_sets
from harness import paths as P
from harness import toy
from peers import FactorScorer, ratio, select_on_holdout

TITLE = "BPR-MF against cornac and implicit on Flickr F.S, and HASC on the strongest BPR-MF"
GRID = [(lr, lam) for lr in (0.01, 0.05) for lam in (0.001, 0.01)]
PEERS = (("cornac BPR", "cornac"), ("implicit BPR", "implicit"))  # (contender, package)


def fit_cornac(train, num_users, num_items, lr, lam, seed, k=64, epochs=100):
    import cornac
    triples = [(str(u), str(i), 1.0) for u, i in zip(train["user"].to_numpy(), train["item"].to_numpy())]
    data = cornac.data.Dataset.from_uir(triples, seed=seed)
    model = cornac.models.BPR(k=k, max_iter=epochs, learning_rate=lr, lambda_reg=lam, seed=seed, verbose=False)
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    users = np.zeros((num_users, k), np.float32)
    items = np.zeros((num_items, k), np.float32)
    bias = np.full(num_items, -1e9)  # an item cornac never saw in training ranks last
    for raw, idx in data.uid_map.items():
        users[int(raw)] = model.u_factors[idx]
    for raw, idx in data.iid_map.items():
        items[int(raw)] = model.i_factors[idx]
        bias[int(raw)] = model.i_biases[idx]
    return FactorScorer(users, items, bias), seconds, len(train) * epochs


def fit_implicit(train, num_users, num_items, lr, lam, seed, k=64, epochs=100):
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    matrix = sp.csr_matrix((np.ones(len(train), np.float32), (train["user"].to_numpy(), train["item"].to_numpy())),
                           shape=(num_users, num_items))
    matrix.data[:] = 1.0
    model = BayesianPersonalizedRanking(factors=k - 1, learning_rate=lr, regularization=lam, iterations=epochs,
                                        random_state=seed, verify_negative_samples=True)
    start = time.perf_counter()
    model.fit(matrix, show_progress=False)
    seconds = time.perf_counter() - start
    # implicit keeps the item bias as the last factor (users carry a constant 1 there).
    return FactorScorer(np.asarray(model.user_factors), np.asarray(model.item_factors)), seconds, matrix.nnz * epochs


# label -> (config, model.bpr.loss); the shipped row is bpr_flickr_fs's run, the Adam rows retrieval_objective's
TFVREC_ROWS = {
    "tfvrec BPR-MF (shipped: BPR-Opt, SGD)": ("bpr_flickr_fs.yaml", "logistic"),
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


def tfvrec_run(ctx, label, sets=()):
    """The run of a tfvrec row: ``trained_run``'s tuple."""
    import bench_bpr_flickr
    import bench_retrieval
    config_file, loss = TFVREC_ROWS[label]
    if config_file == bench_bpr_flickr.CONFIG:
        trained = bench_bpr_flickr.shipped_run(ctx, sets)
    else:
        trained = bench_retrieval.flickr_run(ctx, loss)
    return trained_run(ctx, trained.config)


def hasc_run(ctx, bpr_dir):
    sets = HASC_SETS + [f"model.hasc.bpr_run={bpr_dir}", "trainer.verbose=2", "eval.baselines=[]"] + \
        (quick_sets() if ctx.quick else [])
    config = toy.config(ctx, "hasc_flickr_fs.yaml", sets)
    config.runtime.model_dir = ctx.run_dir(keyed("hasc-on-" + os.path.basename(bpr_dir), sets))
    return trained_run(ctx, config)


def holdout_and_peers(ctx, config):
    """The data set of ``config``, its train holdout's HR@5 (N=100) as a selection function, and cornac's
    and implicit's BPR each selected on it over `GRID`: ``(dataset, holdout_hr5, scorers, times, notes)``."""
    from tfvrec import runs
    from tfvrec.data import splits
    from tfvrec.evaluation import evaluator, protocols
    dataset = runs.prepare_dataset(config)  # the splits of the runs (the train holdout carved)
    holdout = splits.validation_frame(config, dataset)  # carves the same train holdout as tfvrec's runs
    train = dataset.split("train")
    holdout_by_user = evaluator.heldout_by_user(holdout)
    holdout_exclude = evaluator.exclusions(dataset, holdout_by_user, judged=splits.HOLDOUT_SPLIT)

    def holdout_hr5(scorer):
        return protocols.evaluate(scorer, holdout_by_user, holdout_exclude, dataset.num_items, "sampled:100",
                                  ks=(5,), repeats=1, seed=config.runtime.seed).metrics["hr@5"]

    epochs = ctx.opt("peer_epochs")
    scorers, times, notes = {}, {}, []
    for (name, package), fit in zip(PEERS, (fit_cornac, fit_implicit)):
        if not ctx.has(package):
            ctx.skip(name, package)
            continue
        _, scorers[name], seconds, pairs, lr, lam = select_on_holdout(
            name, lambda lr, lam: fit(train, dataset.num_users, dataset.num_items, lr, lam, config.runtime.seed,
                                   epochs=epochs),
            GRID, holdout_hr5, notes)
        times[name] = (seconds, pairs, f"k=64, {epochs} epochs, lr {lr}, λ {lam} (selected)")
    return dataset, holdout_hr5, scorers, times, notes


def side_by_side(scorers, times, dataset, split, config, repeats, seconds_digits=0):
    """Every scorer on ``split`` in one call (same candidates), best peer first: the metrics table, the
    contender table (ratio to the best peer, time, pairs/s), the best peer's name (None when no peer ran)
    and the users judged."""
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
    lines = ["| contender | HR@5 (N=100) | ratio to the best peer | training s | pairs/s | settings |",
             "|---|---|---|---|---|---|"]
    for name in ranked:
        seconds, pairs, setting = times[name]
        value = by_name[name][0].metrics["hr@5"]
        lines.append(f"| {name} | {value:.4f} ± {by_name[name][0].std['hr@5']:.4f} | {ratio(value, reference)} | "
                     f"{seconds:.{seconds_digits}f} | {pairs / max(seconds, 1e-9):,.0f} | {setting} |")
    return table, "\n".join(lines), best_peer, len(heldout)


def run(ctx):
    import bench_bpr_flickr
    from tfvrec.evaluation import evaluator
    shipped = bench_bpr_flickr.shipped_run(ctx, ctx.opt("set"))
    config = shipped.config
    dataset, holdout_hr5, scorers, times, notes = holdout_and_peers(ctx, config)
    holdout_values = {}
    for label in TFVREC_ROWS:
        model, seconds, pairs, trained, run = tfvrec_run(ctx, label, ctx.opt("set"))
        run_config = run.config
        scorers[label] = model
        holdout_values[label] = (holdout_hr5(model), run.dir)
        t = run_config.trainer
        times[label] = (seconds, pairs, f"configs/{TFVREC_ROWS[label][0]}: {t.optimizer}, lr {t.learning_rate:g} per "
                                        f"batch of {t.batch_size}, λ/2 = l2 {run_config.model.bpr.l2:g}; {trained} "
                                        f"epochs (early stopping on the holdout); holdout HR@5 "
                                        f"{holdout_values[label][0]:.4f}")
    strongest = max(holdout_values, key=lambda n: holdout_values[n][0])
    scorers[HASC_LABEL], seconds, pairs, trained, _ = hasc_run(ctx, holdout_values[strongest][1])
    times[HASC_LABEL] = (seconds, pairs, f"configs/hasc_flickr_fs.yaml with {', '.join(HASC_SETS)} and P, W from the "
                                         f"run of {strongest} (the highest holdout HR@5); {trained} epochs (early "
                                         "stopping on the holdout; the init's own training time not included)")
    table, contenders, best_peer, users = side_by_side(scorers, times, dataset, "validation", config,
                                                       ctx.opt("repeats"))
    holdout_users = len(evaluator.heldout_by_user(dataset.split("validation")))
    against = f"p: paired t-test over users against the best peer, {best_peer}" if best_peer else \
        "no peer ran: p against the first row"
    return "\n".join([
        f"## {TITLE}", "",
        "Same training interactions for every contender (likes_train.tsv minus the train holdout), peers' grid "
        "selected on the holdout (HR@5, N=100), all rows scored by tfvrec's evaluator in one table on likes_val.tsv "
        f"({holdout_users:,} users; same exclusions and candidates; {against}).", "",
        table, "", contenders, "",
        "Grid (selected on the holdout, HR@5 N=100): " + ("; ".join(notes) or "no peer ran") + ".", "",
        "pairs/s: training (user, positive, negative) pairs per second of training time (tfvrec: batches × batch × "
        "negatives; peers: interactions × epochs). tfvrec's time includes its per-epoch validation and checkpoints."])


PATHS = P.TRAINING + P.EVALUATION + P.model("bpr") + P.model("hasc") + P.config("bpr_flickr_fs.yaml") + \
    P.config("bpr_flickr_fs_retrieval.yaml") + P.config("hasc_flickr_fs.yaml") + \
    ("tools/peers/__init__.py", "tools/bench_bpr_flickr.py", "tools/bench_retrieval.py")
SECTIONS = [Section(
    name="peers_bpr", title=TITLE, run=run, paths=PATHS, needs=("cornac", "implicit"), data=("flickr_fs",),
    runs="bench_peers", group="peers", make="bench-peers",
    options={"set": [], "peer_epochs": 100, "repeats": 10}, quick={"peer_epochs": 3, "repeats": 1})]
