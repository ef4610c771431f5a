"""Section ``peers_bpr_posters`` — point 1 on a second data set: BPR-MF on the MovieLens posters likes.

``configs/bpr_posters.yaml`` (ratings ≥ 4 on movies with a poster; held out: each user's likes on their last
active day) against cornac's and implicit's BPR, tuned and timed as in ``peers_bpr`` (`peers.bpr.select_and_time`):
the same per-pair step × λ grid for every contender, widened outward when a winner sits on its edge; the same
early stopping on the same train holdout (HR@5 at 100 sampled negatives by tfvrec's validation function, patience
of the config, the same epoch budget; the peers trained in chunks that continue from their factors); each
selected point timed ≥ 3 times at one thread and at all cores (median, min–max), and the time tfvrec needs to
reach cornac's holdout HR@5. The selected points are then scored in one table on the test split (same
candidates, 10 repeats).
"""
from harness import Section, keyed, quick_sets
from harness import paths as P
from peers.bpr import (OPTIONS, QUICK, grid_sets, holdout_data, method_text, select_and_time, selection_lines,
                       side_by_side, time_to_quality_lines, timing_lines)

TITLE = "BPR-MF against cornac and implicit on the MovieLens posters likes"
CONFIG = "bpr_posters.yaml"


def run(ctx):
    base_sets = ["trainer.verbose=0", "eval.baselines=[]"] + (quick_sets() if ctx.quick else [])
    config = ctx.config(CONFIG, base_sets)
    dataset, data, evaluate = holdout_data(config)
    notes = []

    def make_config(lr, lam):
        sets = base_sets + grid_sets(config, lr, lam, ctx.opt("max_epochs"))
        point = ctx.config(CONFIG, sets)
        point.runtime.model_dir = ctx.run_dir(keyed(f"posters-lr{lr:g}-l{lam:g}", sets))
        return point
    selected = select_and_time(ctx, config, dataset, data, evaluate, make_config, notes)
    scorers = {name: s.scorer for name, s in selected.items()}
    settings = {name: f"lr {s.choice.lr:g}, λ {s.choice.lam:g}, epoch {s.epoch} (holdout {s.choice.value:.4f})"
                for name, s in selected.items()}
    table, contenders, best_peer, users = side_by_side(scorers, settings, dataset, "test", config, ctx.opt("repeats"))
    against = f"p: paired t-test over users against the best peer, {best_peer}" if best_peer else \
        "no peer ran: p against the first row"
    return "\n".join([
        f"## {TITLE}", "",
        "Same training interactions for every contender (the train split minus the train holdout); "
        + method_text(ctx, config), "",
        f"Rows scored by tfvrec's evaluator in one table on the test split ({users} users, each user's likes on "
        f"their last active day; same exclusions and candidates; {against}).", "",
        table, "", contenders, "",
        "Selection (holdout HR@5, N=100):", "", *selection_lines(selected, CONFIG, config), "",
        "Training time of each selected point, trained afresh to its stopping epoch:", "",
        *timing_lines(selected), "", *time_to_quality_lines(selected), "",
        "Grid points (holdout HR@5 at each contender's best epoch): " + ("; ".join(notes) or "none") + "."])


SECTIONS = [Section(
    name="peers_bpr_posters", title=TITLE, run=run, needs=("cornac", "implicit"), data=("movielens_posters",),
    paths=P.TRAINING + P.EVALUATION + P.model("bpr") + P.config(CONFIG) + ("tools/peers/__init__.py",
                                                                           "tools/peers/bpr.py"),
    runs="bench_peers", group="peers", make="bench-peers", options=dict(OPTIONS), quick=dict(QUICK))]
