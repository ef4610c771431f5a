"""Section ``peers_bpr_posters`` — point 1 on a second data set: BPR-MF on the MovieLens posters likes.

``configs/bpr_posters.yaml`` (ratings ≥ 4 on movies with a poster; held out: each user's likes on
their last active day) against cornac's and implicit's BPR. Every contender — tfvrec included —
gets the same grid (per-pair step × λ, k = 64, 100 epochs for the peers, early stopping within 100
for tfvrec) selected on the same train holdout by HR@5 at 100 sampled negatives; the selected
points are then scored in one table on the test split (same candidates, 10 repeats).
"""
import os

from peers import REPO, log, ratio, select_on_holdout
from peers.bpr import GRID, fit_cornac, fit_implicit, trained_run

SECTION = "peers_bpr_posters"
TITLE = "BPR-MF against cornac and implicit on the MovieLens posters likes"
CONFIG = os.path.join(REPO, "configs", "bpr_posters.yaml")
LABEL = "tfvrec BPR-MF (configs/bpr_posters.yaml)"


def fit_tfvrec(lr, lam, quick):
    """tfvrec's BPR-MF at a per-pair step ``lr`` and λ ``lam`` (the loss is a batch mean: lr × batch; l2 = λ/2)."""
    from tfvrec import config as config_lib
    base = config_lib.load_config(CONFIG, [])
    name = f"posters-lr{lr}-l{lam}" + ("-quick" if quick else "")
    sets = [f"trainer.learning_rate={lr * base.trainer.batch_size}", f"model.bpr.l2={lam / 2}",
            f"runtime.model_dir={os.path.join(REPO, 'runs', 'bench_peers', name)}", "trainer.verbose=0",
            "eval.baselines=[]"] + (["trainer.epochs=2"] if quick else [])
    config = config_lib.load_config(CONFIG, sets)
    model, seconds, pairs, epochs = trained_run(config, f"{LABEL} lr={lr} λ={lam}")
    return model, seconds, (pairs, epochs)


def run(args):
    from tfvrec import config as config_lib
    from tfvrec.data import splits
    from tfvrec.data.resolve import resolve_dataset
    from tfvrec.evaluation import evaluator, protocols, report
    config = config_lib.load_config(CONFIG, [])
    dataset = resolve_dataset(config.data)
    holdout = splits.validation_frame(config, dataset)  # the train holdout tfvrec's runs carve
    train = dataset.split("train")
    holdout_by_user = evaluator.heldout_by_user(holdout)
    holdout_exclude = evaluator.exclusions(dataset, holdout_by_user, judged=splits.HOLDOUT_SPLIT)

    def holdout_hr5(scorer):
        return protocols.evaluate(scorer, holdout_by_user, holdout_exclude, dataset.num_items, "sampled:100",
                                  ks=(5,), repeats=1, seed=config.runtime.seed).metrics["hr@5"]

    epochs = 3 if args.quick else 100
    scorers, times, notes = {}, {}, []
    for name, fit in (("cornac BPR", fit_cornac), ("implicit BPR", fit_implicit)):
        _, scorers[name], seconds, pairs, lr, lam = select_on_holdout(
            name, lambda lr, lam: fit(train, dataset.num_users, dataset.num_items, lr, lam, config.runtime.seed,
                                   epochs=epochs),
            GRID, holdout_hr5, notes)
        times[name] = (seconds, pairs, f"k=64, {epochs} epochs, lr {lr}, λ {lam} (selected)")
    _, scorers[LABEL], seconds, (pairs, trained), lr, lam = select_on_holdout(
        "tfvrec BPR-MF", lambda lr, lam: fit_tfvrec(lr, lam, args.quick), GRID, holdout_hr5, notes)
    times[LABEL] = (seconds, pairs, f"D=64, SGD, per-pair step {lr}, λ {lam} (selected); {trained} epochs (early "
                                    "stopping on the holdout)")
    log(f"tfvrec selected lr={lr} λ={lam}; configs/bpr_posters.yaml holds lr "
        f"{config.trainer.learning_rate / config.trainer.batch_size:g}, λ {2 * config.model.bpr.l2:g}")

    order = sorted(scorers)
    heldout = evaluator.heldout_by_user(dataset.split("test"))
    rows = evaluator.evaluate_scorers({n: scorers[n] for n in order}, dataset, heldout, ["sampled:100", "sampled:1000"],
                                      [5, 10], 1 if args.quick else 10, config.eval.seed, judged="test")
    by_name = {}
    for name, result in rows:
        by_name.setdefault(name, []).append(result)
    best_peer = max(("cornac BPR", "implicit BPR"), key=lambda n: by_name[n][0].metrics["hr@5"])
    ranked = [best_peer] + [n for n in order if n != best_peer]
    compared = evaluator.comparison.compare([(n, r) for k in range(2) for n in ranked for r in [by_name[n][k]]])
    table = report.format_table([r for _, r in compared], row_labels=[n for n, _ in compared],
                                metrics=["hr@5", "ndcg@5", "hr@10"])
    reference = by_name[best_peer][0].metrics["hr@5"]
    lines = ["| contender | HR@5 (N=100) | ratio to the best peer | training s | pairs/s | settings |",
             "|---|---|---|---|---|---|"]
    for name in ranked:
        seconds, pairs, setting = times[name]
        value = by_name[name][0].metrics["hr@5"]
        lines.append(f"| {name} | {value:.4f} ± {by_name[name][0].std['hr@5']:.4f} | {ratio(value, reference)} | "
                     f"{seconds:.1f} | {pairs / max(seconds, 1e-9):,.0f} | {setting} |")
    users = len(heldout)
    return "\n".join([
        f"## {TITLE}", "",
        "Command: `.venv/bin/python tools/bench_peers.py --sections bpr_posters` (bench extra). Same training "
        "interactions for every contender (the train split minus the train holdout); every contender's grid "
        f"({', '.join(f'lr {a}, λ {b}' for a, b in GRID)}) selected on the holdout (HR@5, N=100); rows scored by "
        f"tfvrec's evaluator in one table on the test split ({users} users, each user's likes on their last "
        f"active day; same exclusions and candidates; p: paired t-test over users against the best peer, "
        f"{best_peer}).", "",
        table, "", "\n".join(lines), "",
        "Grid (selected on the holdout, HR@5 N=100): " + "; ".join(notes) + ".", "",
        "tfvrec's time includes its per-epoch validation and checkpoints."])
