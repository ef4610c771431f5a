"""Section ``retrieval_objective``: tfrs' retrieval objective against the pairwise one, same data, budget and
protocol.

    python tools/bench.py --sections retrieval_objective [--option "only=['ugallery']" --option triplets=2000000]

For each data set the model is trained twice from its shipped config, once with its pairwise
loss (``logistic``) and once with ``loss: retrieval`` (`tfvrec.tasks.retrieval`: softmax over the
global batch's positives and the examples' sampled negatives), with the same examples, steps,
batch and learning rate; both runs are then evaluated in one table with the paper's protocol,
so the paired t-test over users compares them on the same candidates. Wall time is the
training time of each run. The BPR-MF runs on Flickr F.S (`flickr_run`) are shared with
``peers_bpr``. Needs the real data sets (``$TFVREC_SHARED_DATA``); the posters' features come from
the ``features`` section's file (`bench_features.posters_config`).
"""
from harness import Section, keyed, quick_sets
from harness import paths as P
from harness import toy

# name -> (config, model section, budget: "triplets" (a D_S) or "epochs", metrics of the table)
SETS = {
    "ugallery": ("curatornet_ugallery.yaml", "curatornet", "triplets", ["auc", "recall@20", "ndcg@100"]),
    "posters": ("curatornet_posters.yaml", "curatornet", "triplets", ["auc", "recall@20", "ndcg@100"]),
    "flickr_fs": ("bpr_flickr_fs_retrieval.yaml", "bpr", "epochs", ["hr@5", "ndcg@5", "hr@10"]),
}


def budget(kind, triplets, bpr_epochs):
    if kind == "triplets":  # 10 epochs over a D_S of ``triplets`` triplets
        steps = max(1, -(-triplets // (512 * 10)))
        return [f"model.curatornet.num_triplets={triplets}", "trainer.epochs=10",
                f"trainer.steps_per_epoch={steps}", "trainer.batch_size=512"]
    return [f"trainer.epochs={bpr_epochs}"]


def pair_config(ctx, name, loss, triplets=2_000_000, bpr_epochs=30):
    """The config of one run of the pair (``name``'s data set, ``loss``); its run directory set."""
    config_file, section, kind, _ = SETS[name]
    sets = budget(kind, triplets, bpr_epochs) + [f"model.{section}.loss={loss}", "trainer.verbose=2",
                                                 "eval.baselines=[]"]
    if ctx.quick:
        sets += quick_sets() + (["model.curatornet.num_clusters=8", "model.curatornet.cluster_restarts=1"]
                                if section == "curatornet" else [])
    if name == "posters":
        import bench_features
        config = bench_features.posters_config(ctx, config_file, sets)
    else:
        config = toy.config(ctx, config_file, sets) if name == "flickr_fs" else ctx.config(config_file, sets)
    # (Flickr F.S's runs are shared with peers_bpr; the others are this section's.)
    folder = ctx.shared_dir if name == "flickr_fs" else ctx.run_dir
    config.runtime.model_dir = folder(keyed(f"{name}-{loss}", sets))
    return config


def flickr_run(ctx, loss):
    """BPR-MF on Flickr F.S (configs/bpr_flickr_fs_retrieval.yaml, this section's budget) with ``loss``: the
    `Trained` run ``peers_bpr`` shares."""
    options = SECTIONS[0].resolve_options(ctx.quick)
    return ctx.trained(pair_config(ctx, "flickr_fs", loss, options["triplets"], options["bpr_epochs"]))


def run_pair(ctx, name):
    from tfvrec.evaluation import evaluator, report
    metrics = SETS[name][3]
    models, seconds, dataset, config = {}, {}, None, None
    for loss in ("logistic", "retrieval"):
        trained = ctx.trained(pair_config(ctx, name, loss, ctx.opt("triplets"), ctx.opt("bpr_epochs")))
        seconds[loss] = trained.train_seconds
        config, dataset, models[loss] = trained.load()
    judged = config.eval.split if config.eval.split in dataset.interactions else "validation"
    heldout = evaluator.heldout_by_user(dataset.split(judged))
    rows = evaluator.evaluate_scorers({"pairwise (logistic)": models["logistic"],
                                       "retrieval (tfrs softmax)": models["retrieval"]}, dataset, heldout,
                                      config.eval.protocols, config.eval.ks, config.eval.repeats, config.eval.seed,
                                      judged=judged)
    table = report.format_table([r for _, r in rows], row_labels=[n for n, _ in rows], metrics=metrics)
    return rows, seconds, table, config


def run(ctx):
    lines = ["## The retrieval objective against the pairwise one",
             "",
             f"Budget: {ctx.opt('triplets'):,} CuratorNet training triplets per run, BPR-MF at most "
             f"{ctx.opt('bpr_epochs')} epochs (early stopping). Each model trained twice from its shipped config, once "
             "per loss, with the same examples, budget and learning rate; the two runs evaluated in one table (the "
             "paper's protocol; p: paired t-test over users of the pairwise row against the retrieval row). "
             "Retrieval: tfrs softmax over the global batch's positives plus the sampled negatives, accidental hits "
             "removed, log-Q correction for BPR-MF (item frequency) and off for CuratorNet (guideline sampling).",
             ""]
    for name in ctx.opt("only"):
        rows, seconds, table, config = run_pair(ctx, name)
        ctx.log(f"{name}:\n{table}")
        lines += [f"### {name} ({config.model.name})", "", table, "",
                  f"Training time: pairwise {seconds['logistic']:.0f} s, retrieval {seconds['retrieval']:.0f} s "
                  f"(ratio {seconds['retrieval'] / max(seconds['logistic'], 1e-9):.2f}).", ""]
    return "\n".join(lines)


SECTIONS = [Section(
    name="retrieval_objective", title="tfrs' retrieval objective against the pairwise one (CuratorNet, BPR-MF)",
    run=run, paths=P.TRAINING + P.EVALUATION + P.model("curatornet") + P.model("bpr") + ("tools/bench_features.py",)
    + tuple(f"configs/{c}" for c, _, _, _ in SETS.values()), data=("ugallery", "movielens_posters", "flickr_fs"),
    make="bench-retrieval", options={"only": sorted(SETS), "triplets": 2_000_000, "bpr_epochs": 30},
    quick={"triplets": 3000, "bpr_epochs": 1})]
