"""Section ``peers_bpr_posters`` — point 1 on a second data set: BPR-MF on the MovieLens posters likes.

``configs/bpr_posters.yaml`` (ratings ≥ 4 on movies with a poster; held out: each user's likes on
their last active day) against cornac's and implicit's BPR. Every contender — tfvrec included —
gets the same grid (per-pair step × λ, k = 64, 100 epochs for the peers, early stopping within 100
for tfvrec) selected on the same train holdout by HR@5 at 100 sampled negatives; the selected
points are then scored in one table on the test split (same candidates, 10 repeats).
"""
import os

from peers import REPO, log, select_on_holdout
from peers.bpr import GRID, holdout_and_peers, side_by_side, trained_run

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
    config = config_lib.load_config(CONFIG, [])
    dataset, holdout_hr5, scorers, times, notes = holdout_and_peers(config, args.quick)
    _, scorers[LABEL], seconds, (pairs, trained), lr, lam = select_on_holdout(
        "tfvrec BPR-MF", lambda lr, lam: fit_tfvrec(lr, lam, args.quick), GRID, holdout_hr5, notes)
    times[LABEL] = (seconds, pairs, f"D=64, SGD, per-pair step {lr}, λ {lam} (selected); {trained} epochs (early "
                                    "stopping on the holdout)")
    log(f"tfvrec selected lr={lr} λ={lam}; configs/bpr_posters.yaml holds lr "
        f"{config.trainer.learning_rate / config.trainer.batch_size:g}, λ {2 * config.model.bpr.l2:g}")
    table, contenders, best_peer, users = side_by_side(scorers, times, dataset, "test", config, args.quick,
                                                       seconds_digits=1)
    return "\n".join([
        f"## {TITLE}", "",
        "Command: `.venv/bin/python tools/bench_peers.py --sections bpr_posters` (bench extra). Same training "
        "interactions for every contender (the train split minus the train holdout); every contender's grid "
        f"({', '.join(f'lr {a}, λ {b}' for a, b in GRID)}) selected on the holdout (HR@5, N=100); rows scored by "
        f"tfvrec's evaluator in one table on the test split ({users} users, each user's likes on their last "
        f"active day; same exclusions and candidates; p: paired t-test over users against the best peer, "
        f"{best_peer}).", "",
        table, "", contenders, "",
        "Grid (selected on the holdout, HR@5 N=100): " + "; ".join(notes) + ".", "",
        "tfvrec's time includes its per-epoch validation and checkpoints."])
