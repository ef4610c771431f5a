"""Section ``peers_bpr_posters`` — point 1 on a second data set: BPR-MF on the MovieLens posters likes.

``configs/bpr_posters.yaml`` (ratings ≥ 4 on movies with a poster; held out: each user's likes on
their last active day) against cornac's and implicit's BPR. Every contender — tfvrec included —
gets the same grid (per-pair step × λ, k = 64, 100 epochs for the peers, early stopping within 100
for tfvrec) selected on the same train holdout by HR@5 at 100 sampled negatives; the selected
points are then scored in one table on the test split (same candidates, 10 repeats).
"""
from harness import Section, keyed, quick_sets
from harness import paths as P
from peers import log, select_on_holdout
from peers.bpr import GRID, holdout_and_peers, side_by_side, trained_run

TITLE = "BPR-MF against cornac and implicit on the MovieLens posters likes"
CONFIG = "bpr_posters.yaml"
LABEL = "tfvrec BPR-MF (configs/bpr_posters.yaml)"


def fit_tfvrec(ctx, lr, lam):
    """tfvrec's BPR-MF at a per-pair step ``lr`` and λ ``lam`` (the loss is a batch mean: lr × batch; l2 = λ/2)."""
    base = ctx.config(CONFIG)
    sets = [f"trainer.learning_rate={lr * base.trainer.batch_size}", f"model.bpr.l2={lam / 2}", "trainer.verbose=0",
            "eval.baselines=[]"] + (quick_sets() if ctx.quick else [])
    config = ctx.config(CONFIG, sets)
    config.runtime.model_dir = ctx.run_dir(keyed(f"posters-lr{lr}-l{lam}", sets))
    model, seconds, pairs, epochs, _ = trained_run(ctx, config)
    return model, seconds, (pairs, epochs)


def run(ctx):
    config = ctx.config(CONFIG)
    dataset, holdout_hr5, scorers, times, notes = holdout_and_peers(ctx, config)
    _, scorers[LABEL], seconds, (pairs, trained), lr, lam = select_on_holdout(
        "tfvrec BPR-MF", lambda lr, lam: fit_tfvrec(ctx, lr, lam), GRID, holdout_hr5, notes)
    times[LABEL] = (seconds, pairs, f"D=64, SGD, per-pair step {lr}, λ {lam} (selected); {trained} epochs (early "
                                    "stopping on the holdout)")
    log(f"tfvrec selected lr={lr} λ={lam}; configs/bpr_posters.yaml holds lr "
        f"{config.trainer.learning_rate / config.trainer.batch_size:g}, λ {2 * config.model.bpr.l2:g}")
    table, contenders, best_peer, users = side_by_side(scorers, times, dataset, "test", config, ctx.opt("repeats"),
                                                       seconds_digits=1)
    against = f"p: paired t-test over users against the best peer, {best_peer}" if best_peer else \
        "no peer ran: p against the first row"
    return "\n".join([
        f"## {TITLE}", "",
        "Same training interactions for every contender (the train split minus the train holdout); every "
        f"contender's grid ({', '.join(f'lr {a}, λ {b}' for a, b in GRID)}) selected on the holdout (HR@5, N=100); "
        f"rows scored by tfvrec's evaluator in one table on the test split ({users} users, each user's likes on "
        f"their last active day; same exclusions and candidates; {against}).", "",
        table, "", contenders, "",
        "Grid (selected on the holdout, HR@5 N=100): " + "; ".join(notes) + ".", "",
        "tfvrec's time includes its per-epoch validation and checkpoints."])


SECTIONS = [Section(
    name="peers_bpr_posters", title=TITLE, run=run, needs=("cornac", "implicit"), data=("movielens_posters",),
    paths=P.TRAINING + P.EVALUATION + P.model("bpr") + P.config(CONFIG) + ("tools/peers/__init__.py",
                                                                           "tools/peers/bpr.py"),
    runs="bench_peers", group="peers", make="bench-peers",
    options={"peer_epochs": 100, "repeats": 10}, quick={"peer_epochs": 3, "repeats": 1})]
