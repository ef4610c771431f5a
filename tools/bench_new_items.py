"""Sections ``new-items-posters`` and ``new-items-ugallery``: the visual models where they exist to win — items
nobody has interacted with yet (issue 27).

Per data set (MovieLens posters, UGallery):

(a) the validation grids: every trained row (the shipped CuratorNet, CDL and VBPR recipes, and the
    BPR-MF and TwoNets baselines) over the same learning rate × λ grid, the same epoch budget and the
    same early stopping on the split's *validation items* (``trainer.validation_split: validation``,
    protocol ``new_items``, recall@20), judged by the best weights' recall@20 on those validation
    items; the k of the content k-NN baselines on the same items. Grid runs evaluate the validation
    split only: no tuning run reads the test items. The section says whether each shipped config
    holds its grid's winner.
(b) the shipped recipes and every baseline over the ``seeds`` option's training seeds (``runtime.seed``; the
    split seed stays the config's ``data.split_seed``), each a run of the harness (`harness.runs`: reused while
    the measured code is unchanged, resumed when killed);
(b') with the ``folds`` option K > 1, the same over K item-disjoint test folds: fold 0 is the split's own test
    items; folds 1 … K−1 are the next disjoint item sets of the split's hash order (`fold_items`), each as large,
    each with the *same* validation items, so the grids' choice (made on those validation items) is the choice for
    every fold and no fold's test items are ever judged before the table. A fold k ≥ 1 trains on every interaction
    but its test items' and the validation items' (a copy of the data set with those splits, `fold_data`). More
    test items, fewer accidents of one draw: on the posters one fold holds ~300 items.
(c) the table: each row mean ± std over the seeds of R@20 / nDCG@20 / AUC under ``new_items`` (each user's
    held-out items ranked among every catalogue item without a training interaction) and R@20 under
    ``full`` (the whole catalogue, warm items included), the content each row reads, and the two-sided
    paired t-tests over users of CuratorNet (and CDL) against every row on per-user R@20 averaged over the
    seeds (`tfvrec.evaluation.significance`). With K folds, a seed's figure is the mean over every (fold, user)
    pair (a user judged in two folds counts twice, on different items), and the paired tests are over those pairs.

    python tools/bench.py --sections new-items-posters
    python tools/bench.py --sections new-items-ugallery --option seeds=[0]
    python tools/bench.py --sections bench-new-items --quick     # both, toy sizes on toy copies of the data

Needs $TFVREC_SHARED_DATA (default ../shared/data: movielens_posters, ugallery). The posters' EfficientNet-Lite0
features come from the ``features`` section's file (`bench_features.posters_config`, extracted when missing).
Runs live in ``runs/bench_new_items/<section>/``.
"""
import hashlib
import itertools
import json
import os
import shutil

import numpy as np

from harness import Section, quick_sets
from harness import paths as P
from harness import toy

METRIC = "recall@20"
UNDER_LOAD = 2.5  # load average above which the timings are said to be slow


# -- the tables ----------------------------------------------------------------------------------------

# Each trained row: how its run's config is made from the table's shipped configs, and its grid's two keys
# (learning rate, λ). The grid is the same size for every row: `lr` × `l2` below, centred on each row's own
# default, widened when a winner sits on an edge (each section's ``grids`` option: row -> [lrs, λs]).
POSTERS = {
    "section": "new-items-posters",
    "data": "posters",
    "title": "Posters new items",
    "configs": {"CuratorNet": "curatornet_posters_new_items.yaml", "CDL": "cdl_posters_new_items.yaml",
                "VBPR": "vbpr_posters_new_items.yaml"},
    # The shipped configs train on every like but their validation items (data.test_item_fraction 0: they are judged
    # later on new posters); the table measures their recipes with 15% of the liked posters held out as test items.
    "sets": ["data.test_item_fraction=0.15"],
    "trained": ["CuratorNet", "CDL", "VBPR", "TwoNets", "BPR-MF"],
    "content": ["VisRank", "metadata k-NN", "visual k-NN", "Borda (features)", "popularity", "random"],
    "references": ["CuratorNet", "CDL"],
}
UGALLERY = {
    "section": "new-items-ugallery",
    "data": "ugallery",
    "title": "UGallery new items",
    "configs": {"CuratorNet": "curatornet_posters_new_items.yaml", "VBPR": "vbpr_posters_new_items.yaml"},
    # UGallery has no public image embeddings: the items' content is their artist (one-hot), and every
    # interaction (the public purchases and the importer's last baskets) is pooled into the same
    # item-disjoint split as the posters', so it has validation items for the grids and early stopping.
    "sets": ["eval.baselines=[]", "data.test_item_fraction=0.15", "data.importer=ugallery",
             "data.raw_path=${TFVREC_SHARED_DATA}/ugallery", "data.import_options={}",
             "data.features=", "model.curatornet.item_content=artist_onehot", "model.vbpr.item_content=artist_onehot",
             "model.curatornet.feature_normalization=none", "model.vbpr.feature_normalization=none"],
    "trained": ["CuratorNet", "VBPR", "BPR-MF"],
    "content": ["VisRank", "metadata k-NN", "popularity", "random"],
    "references": ["CuratorNet"],
    "own_winners": True,  # no shipped UGallery config: each row trains its own grid's winner (UGALLERY_GRIDS)
}
# The UGallery grids: 3 × 3 around the posters' winners, CuratorNet's and VBPR's widened twice (their winners sat on
# an edge).
UGALLERY_GRIDS = {"CuratorNet": ([1e-4, 3e-4, 1e-3, 3e-3], [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]),
                  "VBPR": ([1e-3, 3e-3, 1e-2], [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]),
                  "BPR-MF": ([3e-3, 1e-2, 3e-2], [1e-6, 1e-5, 1e-4])}
# Every trained row's grid over the learning rate × λ, with the same epoch budget and early stopping. Each began
# as 2 × 2 around its model's default (CuratorNet, VBPR lr {3e-4, 1e-3} × λ {1e-4, 1e-3}; CDL, TwoNets lr
# {3e-4, 1e-3} × weight decay {0, 1e-4}; BPR-MF lr {1e-3, 3e-3} × λ {1e-5, 1e-4}). Every winner sat on an edge,
# so every grid was widened by a point beyond its winner's edge on each axis (3 × 3; λ = 0 has no lower neighbour:
# a point between instead), and again on each axis where the winner still sat on an edge (CuratorNet's λ, CDL's
# and VBPR's learning rate twice, BPR-MF's twice, VBPR's λ), until no winner sits on an edge it can move past
# (TwoNets' winner is λ = 0, tied with every other λ).
GRIDS = {
    "CuratorNet": ([1e-4, 3e-4, 1e-3], [1e-4, 1e-3, 1e-2, 1e-1]),
    "VBPR": ([3e-4, 1e-3, 3e-3, 1e-2, 3e-2], [1e-5, 1e-4, 1e-3, 1e-2]),
    "CDL": ([3e-4, 1e-3, 3e-3, 1e-2], [0.0, 1e-5, 1e-4]),
    "TwoNets": ([1e-4, 3e-4, 1e-3], [0.0, 1e-5, 1e-4]),
    "BPR-MF": ([1e-3, 3e-3, 1e-2, 3e-2, 1e-1], [1e-6, 1e-5, 1e-4]),
}
GRID_KEYS = {  # row -> (learning-rate key, λ key)
    "CuratorNet": ("trainer.learning_rate", "model.curatornet.l2"),
    "VBPR": ("trainer.learning_rate", "model.vbpr.l2"),
    "CDL": ("trainer.learning_rate", "trainer.weight_decay"),
    "TwoNets": ("trainer.learning_rate", "trainer.weight_decay"),
    "BPR-MF": ("trainer.learning_rate", "model.bpr.l2"),
}
KNN_KS = (0, 5, 20)


# Quick mode: toy model sizes (the data: a toy copy of the real data set; the budget: `harness.quick_sets`).
QUICK_MODELS = {
    "CuratorNet": ["model.curatornet.num_triplets=2048", "trainer.batch_size=256", "model.curatornet.num_clusters=8",
                   "model.curatornet.cluster_restarts=1", "model.curatornet.item_units=16",
                   "model.curatornet.profile_units=16", "model.vbpr.num_triplets=1024", "model.bpr.embedding_dim=8"],
    "CDL": ["model.cdl.fc_units=[16]", "model.cdl.embedding_dim=8", "model.cdl.user_units=[8]",
            "model.cdl.num_clusters=4", "model.cdl.triplets_per_user=2", "trainer.batch_size=64",
            "model.bpr.embedding_dim=8"],
    "VBPR": ["model.vbpr.num_triplets=1024", "model.vbpr.latent_dim=8", "model.vbpr.visual_dim=8",
             "trainer.batch_size=256", "model.bpr.embedding_dim=8"],
}
QUICK_STEPS = 2
QUICK_USERS = {"posters": None, "ugallery": 300}  # toy copies: the posters with quick features (every user); UGallery


class Bench:
    def __init__(self, spec, ctx):
        self.spec, self.ctx = spec, ctx
        self.seeds = list(ctx.opt("seeds"))
        self.folds = int(ctx.opt("folds"))
        self._fold_sets = {0: []}
        self.points, self.knn_k = {}, {}
        self.runs = {}  # run key -> harness.runs.Trained
        self._data = None

    def quick_trainer(self):
        return quick_sets(steps=QUICK_STEPS, validation_users=300) if self.ctx.quick else []

    def data_sets(self):
        """Overrides pointing every run at the section's data set (quick: its toy copy; the posters: with their
        EfficientNet-Lite0 features in it, `bench_features.posters_config`)."""
        if self._data is None:
            ctx, path = self.ctx, self.spec["configs"]["CuratorNet"]
            if self.spec["data"] == "posters":
                import bench_features
                config = bench_features.posters_config(ctx, path, self.spec["sets"], users=QUICK_USERS["posters"])
            else:
                config = toy.config(ctx, path, self.spec["sets"], users=QUICK_USERS["ugallery"])
            self._data = [f"data.source={config.data.source}", f"data.path={config.data.path}"] if ctx.quick else []
        return self._data

    def fold_sets(self, fold):
        """Overrides pointing a run at test fold ``fold`` (0: none, the split itself; else `fold_data`'s copy)."""
        if fold not in self._fold_sets:
            self._fold_sets[fold] = fold_data(self.ctx, self.shipped("CuratorNet"), fold, self.folds)
        return self._fold_sets[fold]

    # -- configs ---------------------------------------------------------------------------------------
    def shipped(self, row, extra=()):
        """The shipped config of ``row`` (CuratorNet, CDL, VBPR) with the table's and the mode's overrides."""
        quick = QUICK_MODELS[row] + self.quick_trainer() if self.ctx.quick else []
        sets = list(self.spec["sets"]) + self.data_sets() + quick + list(extra)
        return self.ctx.config(self.spec["configs"][row], sets)

    def row_config(self, row, seed, directory, extra=(), fold=0):
        """The run of trained ``row`` at ``seed`` in ``directory`` (``extra``: grid assignments) on test fold
        ``fold``."""
        from tfvrec.models.bpr import baselines as bpr_baselines
        from tfvrec.models.cdl import baselines as cdl_baselines
        sets = [f"runtime.seed={seed}", "eval.baselines=[]", "trainer.verbose=2"] + self.fold_sets(fold)
        if row in self.spec["configs"]:
            config = self.shipped(row, sets + list(extra))
        elif row == "TwoNets":
            config = cdl_baselines.twonets_config(self.shipped("CDL", sets))
            _assign(config, self.quick_trainer() + list(extra))
        elif row == "BPR-MF":
            config = bpr_baselines.baseline_config(self.shipped("CuratorNet", sets))
            _assign(config, self.quick_trainer() + list(extra))
        else:
            raise KeyError(row)
        config.runtime.model_dir = directory
        return config

    def grid_values(self, row):
        """The row's grid (``grids`` option); a row it does not name: its shipped point alone (quick: 1 × 1)."""
        grids = self.ctx.opt("grids")
        if row not in grids:
            lr, l2 = self.shipped_point(row)
            return [lr], [l2]
        lrs, l2s = grids[row]
        return list(lrs), list(l2s)

    def shipped_point(self, row):
        if row in self.points:  # a table without shipped configs: its grid's winner
            return self.points[row]
        config = self.row_config(row, 0, self.ctx.run_dir(self.spec["section"], "unused"))
        return tuple(float(_get(config, key)) for key in GRID_KEYS[row])

    def run_dir(self, row, lr, l2, seed, fold=0):
        return self.ctx.run_dir(self.spec["section"], "runs", row.replace(" ", "_"), f"lr{lr:g}-l2{l2:g}",
                                f"seed{seed}" + (f"-fold{fold}" if fold else ""))

    def ensure(self, row, lr, l2, seed, fold=0):
        """The run of ``row`` at (lr, λ) and ``seed`` on test fold ``fold``: trained unless finished. Every run
        evaluates the validation items only (``eval.split: validation``); the table judges the test items
        itself."""
        lr_key, l2_key = GRID_KEYS[row]
        directory = self.run_dir(row, lr, l2, seed, fold)
        config = self.row_config(row, seed, directory, [f"{lr_key}={lr}", f"{l2_key}={l2}"], fold)
        config.eval.split, config.eval.protocols = "validation", ["new_items"]
        self.train(f"{row}-lr{lr:g}-l2{l2:g}-seed{seed}" + (f"-fold{fold}" if fold else ""), config)
        return directory

    # -- (a) the validation grids ----------------------------------------------------------------------
    def grids(self):
        results = {}
        for row in self.spec["trained"]:
            lrs, l2s = self.grid_values(row)
            for lr, l2 in itertools.product(lrs, l2s):
                results[(row, lr, l2)] = _validation_figure(self.ensure(row, lr, l2, 0))
                self.ctx.log(f"grid: {row} lr {lr:g} λ {l2:g}: validation {METRIC} {results[(row, lr, l2)]:.4f}")
        return results

    def knn_grid(self):
        from tfvrec import runs
        from tfvrec.evaluation import evaluator
        config = self.shipped("CuratorNet")
        dataset = runs.prepare_dataset(config)
        heldout = evaluator.heldout_by_user(dataset.split("validation"))
        out = {}
        kinds = ["metadata_knn"] + (["visual_knn"] if config.data.features else [])
        for kind in kinds:
            for k in self.ctx.opt("knn_ks"):
                setattr(config.eval, f"{kind}_k", k)
                scorer = evaluator.baseline_scorers([kind], dataset, config, heldout)
                (_, result), = evaluator.evaluate_scorers(scorer, dataset, heldout, ["new_items"], [20], 1, 0,
                                                          judged="validation")
                out[(kind, k)] = result.metrics[METRIC]
        return out

    # -- (b) training over seeds -----------------------------------------------------------------------
    def train(self, key, config):
        """The run of ``config``, trained unless a finished run of the same code is there (`harness.runs`);
        its training time and the load average at its start are the run's record."""
        self.runs[key] = self.ctx.trained(config)
        if config.runtime.model_dir in self.ctx.trained_here:
            import tensorflow as tf
            tf.keras.backend.clear_session()

    def seed_dir(self, row, seed, fold=0):
        """The run of the shipped recipe of ``row`` at ``seed`` on ``fold`` (seed 0 of fold 0: the grid's run of
        that point)."""
        return self.run_dir(row, *self.shipped_point(row), seed, fold)

    def train_seeds(self):
        for fold in range(self.folds):
            for seed in self.seeds:
                for row in self.spec["trained"]:
                    self.ensure(row, *self.shipped_point(row), seed, fold)

    # -- (c) the table ---------------------------------------------------------------------------------
    def scorers(self, seed, fold=0):
        """``{row: scorer}`` and ``{row: content said}`` of one seed and fold, judged on the same test users."""
        from tfvrec import runs
        from tfvrec.evaluation import evaluator
        scorers, notes = {}, {}
        dataset = None
        for row in self.spec["trained"]:
            config, dataset, model = runs.Run(self.seed_dir(row, seed, fold)).load(dataset=dataset)
            scorers[row], notes[row] = model, getattr(model, "evaluation_note", "") or ""
        host = self.row_config("CuratorNet", seed, self.seed_dir("CuratorNet", seed, fold), fold=fold)
        host.eval.seed = seed  # the random row's draw follows the seed
        for kind, k in self.knn_k.items():
            setattr(host.eval, f"{kind}_k", k)
        heldout = evaluator.heldout_by_user(dataset.split("test"))
        names = {"VisRank": "visrank", "metadata k-NN": "metadata_knn", "visual k-NN": "visual_knn",
                 "Borda (features)": "borda_features", "popularity": "popularity", "random": "random"}
        made = evaluator.baseline_scorers([names[r] for r in self.spec["content"]], dataset, host, heldout)
        for row in self.spec["content"]:
            scorers[row] = made[names[row]]
            notes[row] = getattr(scorers[row], "evaluation_note", "") or ""
        notes["popularity"] = "training likes per item (every new item has 0: a tie, broken at random)"
        notes["random"] = "uniform scores"
        notes["BPR-MF"] = "item ids only (a new item keeps its initial factors: at chance)"
        for row in ("CDL", "TwoNets"):
            if row in notes:
                notes[row] = (f"items: pixels only ({notes[row]}); users: §5 tag clusters of their training items "
                              "(posters: genres and MovieLens tags)" + (", trained pointwise, p = σ(b − D)"
                                                                         if row == "TwoNets" else ""))
        if "VBPR" in notes:
            notes["VBPR"] += "; new items by θ_uᵀE f_i + β'ᵀ f_i (γ_i = β_i = 0)"
        if "CuratorNet" in notes and host.data.features:
            notes["CuratorNet"] += f"; triplets: guidelines over visual clusters of '{host.data.features}'"
        if "Borda (features)" in notes:
            notes["Borda (features)"] = ("Borda count over the user's training posters, centred cosine of "
                                         f"'{host.data.features}' features")
        return scorers, notes, dataset, heldout

    def table(self):
        """``per_seed`` ((row, protocol) → one result per seed: with K folds, `pooled` over the folds), the rows'
        notes, and per fold its test users, the new_items pool's size and (fold 0) the split's record."""
        from tfvrec.evaluation import evaluator
        per_fold = {}  # (row, protocol) -> [[EvalResult per fold] per seed]
        notes, users, pools, split = {}, [], [], {}
        for fold in range(self.folds):
            for n, seed in enumerate(self.seeds):
                scorers, notes, dataset, heldout = self.scorers(seed, fold)
                rows = evaluator.evaluate_scorers(scorers, dataset, heldout, ["new_items", "full"], [20], 1, seed,
                                                  judged="test")
                for (name, result) in rows:
                    per_fold.setdefault((name, result.protocol), [[] for _ in self.seeds])[n].append(result)
            users.append(len(heldout))
            pools.append(len(evaluator.candidate_pool(dataset, "new_items")))
            if fold == 0:
                split = dataset.metadata.get("prepared_split", {})
        per_seed = {key: [folds[0] if len(folds) == 1 else pooled(folds) for folds in by_seed]
                    for key, by_seed in per_fold.items()}
        return per_seed, notes, users, pools, split


# -- test folds ----------------------------------------------------------------------------------------------

FOLD_VERSION = 1  # of the fold copies' making: part of their cache key


class Pooled:
    """One seed's result over K test folds, as an ``EvalResult`` reads for the table: ``users`` are
    (fold, user) pairs, ``per_user`` the folds' per-user values one after the other, ``metrics`` their mean
    (NaN left out, as a single result's mean over users does)."""

    def __init__(self, results):
        self.users = np.concatenate([[f"{fold}:{user}" for user in r.users] for fold, r in enumerate(results)])
        self.per_user = {name: np.concatenate([r.per_user[name] for r in results]) for name in results[0].per_user}
        self.metrics = {name: float(np.nanmean(values)) for name, values in self.per_user.items()}


def pooled(results):
    return Pooled(results)


def fold_items(dataset, data_config, folds):
    """``(validation items, [test items of fold 0 … K−1])`` (sorted item indices) of ``dataset``'s new-items split
    and K − 1 more folds: the items with an interaction in `tfvrec.data.splits.new_items_split`'s hash order; fold 0
    and the validation items are that split's own (checked), fold k ≥ 1 the next block of as many items after them.
    ``dataset`` is the data set as imported (every split; this function pools them, as the split does)."""
    from tfvrec.data import splits
    split = splits.new_items_split(dataset.interactions, dataset.item_ids, data_config.test_item_fraction,
                                   data_config.validation_item_fraction, data_config.split_seed)
    pooled_rows = splits.pooled_interactions(dataset.interactions)
    items = np.unique(pooled_rows["item"].to_numpy(np.int64))
    ids = np.asarray(dataset.item_ids, dtype=object)[items]
    keys = splits.item_keys(ids, data_config.split_seed)
    order = items[sorted(range(len(items)), key=lambda n: (int(keys[n]), str(ids[n])))]
    n_test, n_validation = len(split.test_items), len(split.validation_items)
    if not (np.array_equal(np.sort(order[:n_test]), split.test_items)
            and np.array_equal(np.sort(order[n_test:n_test + n_validation]), split.validation_items)):
        raise AssertionError("fold_items no longer follows tfvrec.data.splits.new_items_split's order")
    if n_test * folds + n_validation >= len(items):
        raise ValueError(f"{folds} test folds of {n_test} items and {n_validation} validation items leave no "
                         f"training item of {len(items)}")
    rest = order[n_test + n_validation:]
    tests = [split.test_items] + [np.sort(rest[(k - 1) * n_test:k * n_test]) for k in range(1, folds)]
    return split.validation_items, tests


def fold_data(ctx, config, fold, folds):
    """Config overrides pointing a run at test fold ``fold`` ≥ 1 of ``config``'s data set: a copy of it (under
    the context's cache) whose ``train`` / ``validation`` / ``test`` splits are `fold_items`' fold, read as
    imported (``data.split=as_imported``). Everything else is kept (users, items with their images and
    metadata, features, social links); post tags on a held-out item are left out, as the new-items split leaves
    them out of what a model trains on."""
    import pandas as pd
    from tfvrec.data.dataset import load_dataset
    from tfvrec.data.resolve import dataset_path
    source = os.path.abspath(dataset_path(config.data))
    data = config.data
    stamp = [(name, os.path.getsize(os.path.join(root, name)), int(os.path.getmtime(os.path.join(root, name))))
             for root, _, names in sorted(os.walk(source)) for name in sorted(names)]
    key = hashlib.sha256(json.dumps([FOLD_VERSION, source, stamp, data.split_seed, data.test_item_fraction,
                                     data.validation_item_fraction, fold, folds]).encode()).hexdigest()[:10]
    out = os.path.join(ctx.cache_dir, "folds", f"{os.path.basename(source)}-fold{fold}-{key}")
    if not os.path.isdir(out):
        dataset = load_dataset(source)
        validation, tests = fold_items(dataset, data, folds)
        ids = np.asarray(dataset.item_ids, dtype=object)
        test_ids, validation_ids = set(ids[tests[fold]]), set(ids[validation])

        def read(path):
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        frames = [read(os.path.join(source, "interactions", name))
                  for name in sorted(os.listdir(os.path.join(source, "interactions")))]
        columns = [c for c in frames[0].columns if all(c in f.columns for f in frames)]
        rows = pd.concat([f[columns] for f in frames], ignore_index=True).drop_duplicates(ignore_index=True)
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=lambda d, names: ("interactions", "post_tags.tsv", "items.tsv")
                        if os.path.abspath(d) == source else ())
        table = read(os.path.join(source, "items.tsv"))
        if "image" in table:  # relative image paths pointed into the source folder
            table["image"] = [p if not p or os.path.isabs(p) else os.path.join(source, p) for p in table["image"]]
        table.to_csv(os.path.join(tmp, "items.tsv"), sep="\t", index=False)
        os.makedirs(os.path.join(tmp, "interactions"))
        held = rows["item"].isin(test_ids) | rows["item"].isin(validation_ids)
        for name, part in (("train", rows[~held]), ("validation", rows[rows["item"].isin(validation_ids)]),
                           ("test", rows[rows["item"].isin(test_ids)])):
            part.to_csv(os.path.join(tmp, "interactions", f"{name}.tsv"), sep="\t", index=False)
        tags = os.path.join(source, "post_tags.tsv")
        if os.path.exists(tags):
            frame = read(tags)
            frame = frame[~(frame["item"].isin(test_ids) | frame["item"].isin(validation_ids))]
            frame.to_csv(os.path.join(tmp, "post_tags.tsv"), sep="\t", index=False)
        os.replace(tmp, out)
        ctx.log(f"test fold {fold} of {folds}: {len(test_ids)} test items, {len(validation_ids)} validation items "
                f"of {os.path.basename(source)} -> {out}")
    return ["data.source=directory", f"data.path={out}", "data.split=as_imported"]


def _assign(config, assignments):
    from tfvrec import config as config_lib
    for assignment in assignments:
        config_lib.override(config, config_lib.parse_set(assignment), source="grid")


def _get(config, key):
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _validation_figure(directory):
    from tfvrec import runs
    metrics = runs.Run(directory).metrics
    for result in metrics["results"]:
        if result["protocol"].startswith("new_items"):
            return float(result["metrics"][METRIC])
    raise ValueError(f"{directory}: no new_items figure in metrics.json")


# -- formatting ---------------------------------------------------------------------------------------------

def _mean_std(values):
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _cell(values, digits=4):
    mean, std = _mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def per_user_mean(results, metric):
    """Per-user values averaged over the seeds (the same users in every seed)."""
    users = results[0].users
    for r in results[1:]:
        if not np.array_equal(r.users, users):
            raise ValueError("different users across seeds")
    return np.nanmean(np.stack([r.per_user[metric] for r in results]), axis=0)


def format_table(spec, per_seed, notes, seeds):
    from tfvrec.evaluation import significance
    rows = [name for name in spec["trained"] + spec["content"]]
    order = sorted(rows, key=lambda r: -np.mean([x.metrics[METRIC] for x in per_seed[(r, "new_items")]]))
    refs = [r for r in spec["references"] if r in rows]
    header = ("| row | content it reads | R@20 new_items | nDCG@20 new_items | AUC new_items | R@20 full | "
              + " | ".join(f"p vs {r} (Δ R@20)" for r in refs) + " |")
    lines = [header, "|" + "---|" * (6 + len(refs))]
    verdicts = {}
    for row in order:
        new, full = per_seed[(row, "new_items")], per_seed[(row, "full")]
        cells = [_cell([x.metrics[METRIC] for x in new]), _cell([x.metrics["ndcg@20"] for x in new]),
                 _cell([x.metrics["auc"] for x in new]), _cell([x.metrics[METRIC] for x in full])]
        tests = []
        for ref in refs:
            if ref == row:
                tests.append("(reference)")
                continue
            a, b = per_user_mean(per_seed[(ref, "new_items")], METRIC), per_user_mean(new, METRIC)
            test = significance.paired_test(a, b)
            ref_mean, ref_std = _mean_std([x.metrics[METRIC] for x in per_seed[(ref, "new_items")]])
            row_mean, row_std = _mean_std([x.metrics[METRIC] for x in new])
            beyond = ref_mean - row_mean > max(ref_std, row_std)
            wins = test.p_value < 0.05 and test.mean_difference > 0 and beyond
            verdicts[(ref, row)] = (wins, test.p_value, test.mean_difference, beyond)
            tests.append(f"{significance.format_p(test.p_value)} ({test.mean_difference:+.4f})")
        lines.append(f"| {row} | {notes.get(row, '')} | " + " | ".join(cells + tests) + " |")
    return "\n".join(lines), verdicts, order


def format_grid(results, knn, spec):
    lines = ["| row | learning rate | λ | validation R@20 (new_items) | chosen |", "|---|---|---|---|---|"]
    winners = {}
    for row in spec["trained"]:
        points = {k: v for k, v in results.items() if k[0] == row}
        best = max(points, key=points.get)
        winners[row] = best
        for key, value in sorted(points.items()):
            lines.append(f"| {row} | {key[1]:g} | {key[2]:g} | {value:.4f} | {'**yes**' if key == best else ''} |")
    knn_lines = []
    if knn:
        knn_lines = ["", "| baseline | k | validation R@20 (new_items) |", "|---|---|---|"]
        for (kind, k), value in sorted(knn.items()):
            knn_lines.append(f"| {kind} | {k} | {value:.4f} |")
    return "\n".join(lines + knn_lines), winners


def edges(winners, bench):
    """The rows whose winner sits on an edge of its grid (learning rate or λ)."""
    out = []
    for row, (_, lr, l2) in winners.items():
        lrs, l2s = bench.grid_values(row)
        if lr in (min(lrs), max(lrs)) or (len(l2s) > 1 and l2 in (min(l2s), max(l2s)) and l2 > 0):
            out.append(row)
    return out


def shipped_check(winners, bench):
    """Does each shipped config (and the host's eval.baseline_trainer / model sections) hold its grid's winner?"""
    said = []
    for row, (_, lr, l2) in winners.items():
        config = bench.row_config(row, 0, bench.ctx.run_dir(bench.spec["section"], "unused"))
        lr_key, l2_key = GRID_KEYS[row]
        ok = np.isclose(_get(config, lr_key), lr) and np.isclose(_get(config, l2_key), l2)
        said.append(f"{row} {'ships its winner' if ok else 'does NOT ship its winner'} "
                    f"(lr {_get(config, lr_key):g}, λ {_get(config, l2_key):g})")
    return "; ".join(said)


def run_table(ctx, spec):
    from tfvrec.evaluation import significance
    bench = Bench(spec, ctx)
    grid_text, winners, edge_note = "", {}, ""
    if ctx.opt("grid") or spec.get("own_winners"):
        results = bench.grids()
        knn = bench.knn_grid()
        grid_text, winners = format_grid(results, knn, spec)
        if spec.get("own_winners"):
            bench.points = {row: (lr, l2) for row, (_, lr, l2) in winners.items()}
        on_edge = edges(winners, bench)
        edge_note = (f"Winners on an edge of their grid: {', '.join(on_edge)}." if on_edge
                     else "No winner sits on an edge of its grid.")
        if spec.get("own_winners"):
            edge_note += " Each row trains its grid's winner; the k-NN rows their best k."
            for kind in ("metadata_knn", "visual_knn"):
                points = {k: v for (name, k), v in knn.items() if name == kind}
                if points:
                    bench.knn_k[kind] = max(points, key=points.get)
        else:
            edge_note += " " + shipped_check(winners, bench) + "."
    bench.train_seeds()
    seeds = bench.seeds
    per_seed, notes, fold_users, pools, split = bench.table()
    table, verdicts, order = format_table(spec, per_seed, notes, seeds)
    per_seed_lines = []
    for row in order:
        figures = ", ".join(f"{x.metrics[METRIC]:.4f}" for x in per_seed[(row, "new_items")])
        per_seed_lines.append(f"{row} {figures}")
    verdict_lines = []
    for ref in spec["references"]:
        beaten = [row for (r, row), v in verdicts.items() if r == ref and v[0]]
        not_beaten = [f"{row} (p {significance.format_p(v[1])}, Δ {v[2]:+.4f}"
                      f"{'' if v[3] else ', within the seed spread'})"
                      for (r, row), v in verdicts.items() if r == ref and not v[0]]
        verdict_lines.append(f"- **{ref}** beats (p < 0.05 and by more than the seed spread): "
                             f"{', '.join(beaten) or 'no row'}; does not beat: {', '.join(not_beaten) or 'none'}.")
    keys = {row: [f"{row}-lr{bench.shipped_point(row)[0]:g}-l2{bench.shipped_point(row)[1]:g}-seed{seed}"
                  for seed in seeds] for row in spec["trained"]}
    trained = [f"{row} {np.mean([bench.runs[k].train_seconds for k in keys[row]]):.0f} s" for row in spec["trained"]]
    load_at = [t.record["load"][0] for t in bench.runs.values() if t.record.get("load")]
    config_names = ", ".join(f"`configs/{c}`" for c in dict.fromkeys(spec["configs"].values()))
    if spec.get("own_winners"):
        recipes = (f"Recipes: {config_names} with this data set's overrides (`{spec['section']}` in "
                   "tools/bench_new_items.py: " + ", ".join(f"`{s}`" for s in spec["sets"]) + "); each row at its "
                   "own validation grid's winner (below); the test items were evaluated once per recipe and seed.")
    elif not grid_text:
        recipes = (f"Recipes: {config_names}, each selected on the validation items by the grids of an earlier run "
                   "(option grid=False: not re-run at this commit; each shipped config's comments give its grid), "
                   f"run here with {', '.join(f'`{x}`' for x in spec['sets'])} (the shipped configs hold out no test "
                   "items: they train on every like but their validation items' and are judged on new posters "
                   "later); the test items were evaluated once per shipped recipe and seed.")
    else:
        recipes = (f"Recipes: {config_names}, each selected on the validation items (grid below), run here with "
                   f"{', '.join(f'`{x}`' for x in spec['sets'])} (the shipped configs hold out no test items: "
                   "they train on every like but their validation items' and are judged on new posters later); the "
                   "test items were evaluated once per shipped recipe and seed.")
    grid_paragraph = (f"""Validation grids (seed 0, fold 0): every trained row over learning rate × λ with its
recipe's epoch budget and the same early stopping on the same validation items, each grid widened past its winner's
edges (tools/bench_new_items.py `GRIDS`); the k of the content k-NN rows on the same items. {edge_note}

{grid_text}""" if grid_text else "Validation grids: not run at this commit (option grid=False); the recipes are the "
                      "shipped configs' and the k-NN rows use their `eval.metadata_knn_k` / `eval.visual_knn_k`.")
    if bench.folds == 1:
        judged = (f"Protocol `new_items`: each of the {fold_users[0]} test users' held-out items ranked among the "
                  f"{pools[0]} catalogue items without a training interaction; `full`: the whole catalogue. Each row: "
                  f"mean ± std over training seeds {seeds} (`runtime.seed`); p: two-sided paired t-test over users on "
                  "per-user R@20 (new_items) averaged over the seeds")
    else:
        judged = (f"**{bench.folds} test folds** (option `folds`): fold 0 is the split's test items, folds 1–"
                  f"{bench.folds - 1} the next disjoint blocks of as many items in the split's hash order, every fold "
                  "with the same validation items (so the grids below chose for every fold); a fold trains on all "
                  "but its test and the validation items. Protocol `new_items`: each fold's test users' held-out "
                  "items ranked among that fold's catalogue items without a training interaction (test users per "
                  f"fold {', '.join(map(str, fold_users))}; pools {', '.join(map(str, pools))}); `full`: the whole "
                  f"catalogue. Each row: mean ± std over training seeds {seeds} (`runtime.seed`) of the mean over "
                  f"all {sum(fold_users)} (fold, user) pairs; p: two-sided paired t-test over those pairs on "
                  "per-pair R@20 (new_items) averaged over the seeds")
    return f"""## {spec['title']}

Split: `data.split: new_items`, split seed {split.get('seed')} ({split.get('test_items')} test items and
{split.get('validation_items')} validation items of {split.get('items_with_interactions')} with interactions;
{split.get('interactions', {}).get('train')} training interactions).
{judged} (Δ = reference − row). {recipes}

{table}

Per seed, R@20 (new_items): {'; '.join(per_seed_lines)}.

{chr(10).join(verdict_lines)}

{grid_paragraph}

Training time per run of the shipped recipes (mean over seeds, evaluation of the validation items after each epoch
included): {', '.join(trained) or 'not recorded'}; load average at the start of the runs
{min(load_at or [0]):.2f}–{max(load_at or [0]):.2f}{' (under load: timings are slow, figures unaffected)'
    if load_at and max(load_at) > UNDER_LOAD else ''}.
"""


def run_posters(ctx):
    return run_table(ctx, POSTERS)


def run_ugallery(ctx):
    return run_table(ctx, UGALLERY)


def _grids(grids):
    return {row: [list(lrs), list(l2s)] for row, (lrs, l2s) in grids.items()}


PATHS = (P.TRAINING + P.EVALUATION + P.model("curatornet") + P.model("cdl") + P.model("vbpr") + P.model("bpr")
         + P.FEATURES + P.config(POSTERS["configs"]["CuratorNet"]) + P.config(POSTERS["configs"]["CDL"])
         + P.config(POSTERS["configs"]["VBPR"]))
OPTIONS = {"seeds": [0, 1, 2], "knn_ks": list(KNN_KS), "grid": True, "folds": 3}
QUICK = {"seeds": [0], "grids": {}, "knn_ks": [0], "folds": 2}  # 1 × 1 grids: each row's shipped point
SECTIONS = [
    Section(name=POSTERS["section"], title="New items on MovieLens posters: CuratorNet, CDL, VBPR vs baselines "
            "(validation grids, seeds, paired tests)", run=run_posters, paths=PATHS + ("tools/bench_features.py",),
            data=("movielens_posters",), make="bench-new-items",
            options=dict(OPTIONS, grids=_grids(GRIDS)), quick=dict(QUICK)),
    Section(name=UGALLERY["section"], title="New items on UGallery: CuratorNet, VBPR vs baselines at their own "
            "grids' winners", run=run_ugallery, paths=PATHS, data=("ugallery",), make="bench-new-items",
            options=dict(OPTIONS, grids=_grids(UGALLERY_GRIDS)), quick=dict(QUICK)),
]
