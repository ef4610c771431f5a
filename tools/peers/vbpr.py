"""Section ``peers_vbpr`` — point 2: tfvrec's VBPR against cornac 3.0.1's VBPR on the MovieLens posters likes.

Both contenders see the same EfficientNet-Lite0 poster features (``configs/curatornet_posters.yaml``'s
``efficientnet_lite0`` feature set, raw vectors as the config feeds them), the same training interactions (the
posters' train split minus one like per user: the train holdout, ``tfvrec.data.splits``), the same factor
sizes (100 non-visual + 100 visual), batch and triplet budget. Each contender's 3 × 3 grid (learning rate × λ,
its own scale of λ; one more value outward on an axis whose edge holds the winner, at most ``widenings``
times: `peers.grid_search`, shared with the BPR sections) is selected on the train holdout by AUC under full
ranking (the rule CuratorNet's validation uses); the selected models are then scored by tfvrec's evaluator in
one table on the reported split (``test``: each user's last day with likes, full ranking of every item the
user has not liked in training). tfvrec's VBPR is the ``vbpr`` baseline run of the posters config
(`tfvrec.models.vbpr`, its own sampling ``model.vbpr.sampling``, early stopping over its 10 epochs on the
holdout); cornac's is ``cornac.models.VBPR`` (uniform BPR triplets, PyTorch on CPU, the whole budget). Not yet
as in the BPR sections: cornac's VBPR is not stopped early on the holdout (it runs in a child process; chunks
would have to carry its factors across), and each point is timed once at the threads each library takes by
default. Items cornac never saw in training are scored by its model from their features (γ_i = 0, β_i = 0).
Without cornac or PyTorch (quick mode only), tfvrec's VBPR runs alone and the section says so.
"""
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from harness import Section, keyed
from harness import paths as P
from peers import TOOLS, FactorScorer, grid_search, ratio

TITLE = "VBPR against cornac's VBPR on the MovieLens posters (EfficientNet-Lite0 features)"
METRICS = ["auc", "recall@20", "ndcg@20", "recall@100"]


def fit_cornac(train, content, num_users, lr, lam, seed, triplets, batch):
    """cornac's VBPR in a child process: PyTorch's compiler stack (triton) crashes inside a process that has
    TensorFlow loaded. The child imports cornac and numpy only; the time is its ``fit`` alone."""
    with tempfile.TemporaryDirectory(prefix="peers_vbpr_") as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, user=train["user"].to_numpy(), item=train["item"].to_numpy(), content=content,
                 params=np.array([lr, lam, seed, triplets, batch, num_users], np.float64))
        subprocess.run([sys.executable, "-m", "peers.vbpr", inputs, outputs], cwd=TOOLS, check=True)
        out = dict(np.load(outputs))
    return FactorScorer(out["users"], out["items"], out["bias"]), float(out["seconds"]), int(out["seen"])


def cornac_worker(inputs, outputs, latent=100, visual=100):
    import cornac
    import torch  # noqa: F401  (cornac's VBPR imports it inside fit: loaded here, outside the timed fit)
    data = np.load(inputs)
    lr, lam, seed, triplets, batch, num_users = data["params"]
    seed, triplets, batch, num_users = int(seed), int(triplets), int(batch), int(num_users)
    content = data["content"].astype(np.float32)
    triples = [(str(u), str(i), 1.0) for u, i in zip(data["user"], data["item"])]
    train = cornac.data.Dataset.from_uir(triples, seed=seed)
    features = np.zeros((train.num_items, content.shape[1]), np.float32)
    for raw, idx in train.iid_map.items():
        features[idx] = content[int(raw)]
    train.add_modalities(item_image=cornac.data.ImageModality(features=features))
    epochs = max(1, math.ceil(triplets / len(triples)))
    model = cornac.models.VBPR(k=latent, k2=visual, n_epochs=epochs, batch_size=batch, learning_rate=lr,
                               lambda_w=lam, lambda_b=0.01, lambda_e=0.0, use_gpu=False, verbose=False, seed=seed)
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    users = np.zeros((num_users, latent + visual), np.float32)
    for raw, idx in train.uid_map.items():
        users[int(raw)] = np.concatenate([model.gamma_user[idx], model.theta_user[idx]])
    gamma = np.zeros((len(content), latent), np.float32)
    bias = (content @ model.beta_prime).ravel()
    for raw, idx in train.iid_map.items():
        gamma[int(raw)] = model.gamma_item[idx]
        bias[int(raw)] += model.beta_item[idx]
    np.savez(outputs, users=users, items=np.concatenate([gamma, content @ model.emb_matrix], axis=1), bias=bias,
             seconds=seconds, seen=epochs * len(triples))


def fit_tfvrec(ctx, dataset, host, lr, lam):
    """tfvrec's VBPR (the ``vbpr`` baseline run of the posters config ``host``) at Adam lr ``lr`` and λ ``lam``:
    trained afresh (a timing), ``(model, seconds, config)``."""
    import copy

    from tfvrec.models.vbpr.baselines import baseline_config
    from tfvrec.runs import baseline_run_dir
    host = copy.deepcopy(host)
    host.model.vbpr.l2 = lam
    config = baseline_config(host)
    config.trainer.learning_rate = lr
    config.trainer.tensorboard_summaries = not ctx.quick
    config.runtime.model_dir = baseline_run_dir(host.runtime.model_dir, config, "vbpr")  # (keyed by lr too)
    start = time.perf_counter()
    model = ctx.trained(config, fresh=True).model(dataset)
    return model, time.perf_counter() - start, config


def run(ctx):
    import bench_curatornet
    import bench_features
    from tfvrec import config as config_lib
    from tfvrec import runs
    from tfvrec.data import content as content_lib
    from tfvrec.data import splits
    from tfvrec.evaluation import evaluator, protocols, report
    from tfvrec.models.curatornet import model as curatornet

    triplets = ctx.opt("triplets")
    sets = ["trainer.validation_split=train_holdout", "trainer.verbose=0", f"model.vbpr.num_triplets={triplets}"]
    if ctx.quick:
        sets += bench_curatornet.QUICK_SETS + ["trainer.tensorboard_summaries=false"]
    config = bench_features.posters_config(ctx, bench_curatornet.CONFIGS["posters"], sets)
    config.runtime.model_dir = ctx.run_dir(keyed("vbpr", sets))
    dataset = runs.prepare_dataset(config)  # the train holdout carved (in memory) for both
    holdout = splits.validation_frame(config, dataset)
    train = dataset.split("train")
    content, description = content_lib.item_content(dataset, config.model.vbpr.item_content, config.data.features)
    holdout_by_user = evaluator.heldout_by_user(holdout)
    holdout_exclude = evaluator.exclusions(dataset, holdout_by_user, judged=splits.HOLDOUT_SPLIT)

    def holdout_auc(scorer):
        return protocols.evaluate(scorer, holdout_by_user, holdout_exclude, dataset.num_items, "full", ks=(20,),
                                  repeats=1, seed=config.runtime.seed).metrics["auc"]

    notes, scorers, times, choices = [], {}, {}, {}
    batch = config_lib.get_experiment("vbpr").trainer.batch_size
    missing = [p for p in ("cornac", "torch") if not ctx.has(p)]
    if missing:
        ctx.skip("cornac VBPR", " and ".join(missing))
    else:
        def cornac_fit(lr, lam):
            scorer, seconds, seen = fit_cornac(train, content, dataset.num_users, lr, lam, config.runtime.seed,
                                               triplets, batch)
            return holdout_auc(scorer), (scorer, seconds, seen)
        grid = ctx.opt("cornac_grid")
        choice = grid_search("cornac VBPR", cornac_fit, grid["lrs"], grid["lams"], notes, ctx.opt("widenings"))
        scorers["cornac VBPR"], seconds, seen = choice.payload
        lr, lam = choice.lr, choice.lam
        choices["cornac VBPR"] = choice
        times["cornac VBPR"] = (seconds, seen, f"k=k2=100, batch {batch}, {seen // len(train)} epochs, lr {lr:g}, "
                                               f"lambda_w {lam:g}, lambda_b 0.01 (selected)")
    start = time.perf_counter()  # the guideline sampler's visual clusters: made once, shared by the grid points
    curatornet.item_clusters(dataset, config)
    clusters_seconds = time.perf_counter() - start
    def tfvrec_fit(lr, lam):
        model, seconds, vbpr = fit_tfvrec(ctx, dataset, config, lr, lam)
        return holdout_auc(model), (model, seconds, vbpr)
    grid = ctx.opt("tfvrec_grid")
    choice = grid_search("tfvrec VBPR", tfvrec_fit, grid["lrs"], grid["lams"], notes, ctx.opt("widenings"))
    scorers["tfvrec VBPR"], seconds, vbpr = choice.payload
    lr, lam = choice.lr, choice.lam
    choices["tfvrec VBPR"] = choice
    times["tfvrec VBPR"] = (seconds, triplets, f"γ 100 + θ 100, batch {vbpr.trainer.batch_size}, up to "
                                               f"{triplets:,} triplets ({vbpr.model.vbpr.sampling} sampling), lr "
                                               f"{lr:g}, λ {lam:g} (selected)")
    test = dataset.split("test")
    heldout = evaluator.heldout_by_user(test)
    names = [n for n in ("cornac VBPR", "tfvrec VBPR") if n in scorers]  # the peer first: the tests against it
    rows = evaluator.evaluate_scorers({n: scorers[n] for n in names}, dataset, heldout, ["full"], [20, 100], 1,
                                      config.eval.seed, judged="test")
    table = report.format_table([r for _, r in rows], row_labels=[n for n, _ in rows], metrics=METRICS)
    by_name = dict(rows)
    peer = by_name["cornac VBPR"].metrics if "cornac VBPR" in by_name else {m: None for m in METRICS}
    lines = ["| contender | AUC | ratio | R@20 | ratio | nDCG@20 | ratio | training s | ratio | settings |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        m, (seconds, seen, setting) = by_name[name].metrics, times[name]
        lines.append(f"| {name} | {m['auc']:.4f} | {ratio(m['auc'], peer['auc'])} | {m['recall@20']:.4f} | "
                     f"{ratio(m['recall@20'], peer['recall@20'])} | {m['ndcg@20']:.4f} | "
                     f"{ratio(m['ndcg@20'], peer['ndcg@20'])} | {seconds:.0f} | "
                     f"{ratio(seconds, times['cornac VBPR'][0] if 'cornac VBPR' in times else None)} | {setting} |")
    return "\n".join([
        f"## {TITLE}", "",
        f"{description}; {len(train):,} training likes after the train holdout "
        f"({len(holdout):,} likes), {triplets:,} training triplets per grid point. Reported split `test` "
        f"({len(heldout)} users, {len(test):,} likes), full ranking; ratio = tfvrec / cornac (the only peer); "
        "p: paired t-test over users against cornac.", "",
        table, "", "\n".join(lines), "",
        "Grid (each contender's own λ scale, the same size for both, one more value outward on an axis whose edge "
        f"holds the winner, at most {ctx.opt('widenings')} widenings; selected on the holdout by AUC, full ranking): "
        + "; ".join(f"{n}: {c.describe()}" for n, c in choices.items()) + ". Points: " + "; ".join(notes) + ".",
        "" if "cornac VBPR" in scorers else "No peer ran: ratios are —.",
        "", "Training s: wall time of the selected grid point's training (tfvrec's includes its per-epoch holdout "
        "validation and early stopping; cornac trains its whole budget without validation). tfvrec's guideline "
        f"sampler also clusters the posters' features once ({clusters_seconds:.0f} s, PCA + k-means, shared by its "
        "grid points; not in the column)."])



SECTIONS = [Section(
    name="peers_vbpr", title=TITLE, run=run, needs=("cornac", "torch"), data=("movielens_posters",),
    paths=P.TRAINING + P.EVALUATION + P.model("vbpr") + P.model("curatornet") + P.config("curatornet_posters.yaml")
    + ("tools/peers/__init__.py", "tools/bench_features.py", "tools/bench_curatornet.py"),
    runs="bench_peers", group="peers", make="bench-peers",
    options={"triplets": 1_000_000,  # curatornet_posters trains VBPR on 1M too
             # 3 × 3 each, on each contender's own scale (widened outward while the winner sits on an edge)
             "tfvrec_grid": {"lrs": [2.5e-4, 5e-4, 1e-3], "lams": [1e-5, 1e-4, 1e-3]},  # Adam lr; λ on the mean loss
             "cornac_grid": {"lrs": [1e-3, 2.5e-3, 5e-3], "lams": [0.01, 0.1, 1.0]},  # lambda_w on the summed loss
             "widenings": 2},
    quick={"triplets": 5000, "tfvrec_grid": {"lrs": [1e-3], "lams": [1e-4]},
           "cornac_grid": {"lrs": [1e-3], "lams": [0.01]}, "widenings": 0})]


if __name__ == "__main__":  # the cornac child process of fit_cornac
    cornac_worker(*sys.argv[1:3])
