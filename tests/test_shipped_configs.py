"""Shipped configs reproduce what the docs say they do."""
import dataclasses
import os
import re

from tfvrec import config as config_lib
from tfvrec.models.hasc.warm_start import bpr_init_config

from conftest import REPO


def _section(name):
    """Section ``name`` of docs/benchmarks.md, or its last entry in docs/benchmarks_history.md when it has not been
    re-measured since its code changed (a config still holds the recipe that run selected)."""
    text = open(os.path.join(REPO, "docs", "benchmarks.md")).read()
    found = re.search(rf"<!-- BEGIN {name} -->(.*?)<!-- END {name} -->", text, re.S)
    if found is None:
        history = open(os.path.join(REPO, "docs", "benchmarks_history.md")).read()
        found = list(re.finditer(rf"<!-- HISTORY {name} -->(.*?)<!-- /HISTORY {name} -->", history, re.S))[-1]
    return found.group(1)


def test_hasc_flickr_config_is_the_recipe_the_benchmarks_selected():
    """`tfvrec train --config configs/hasc_flickr_fs.yaml` trains the HASC recipe docs/benchmarks.md reports: the
    grid's selected point (section hasc_flickr_fs) at D = 64 on the strongest BPR-MF (section peers_bpr), whose P
    and W come from a run of configs/bpr_flickr_fs.yaml (LearnBPR's SGD). The peers_bpr section's HASC row starts
    from the SGD run at the (lr, λ) its own grid selected, and says whether configs/bpr_flickr_fs.yaml holds it."""
    selected = re.search(r"Selected hyperparameters: \*\*D=(\d+), λ=([\d.e-]+), att=(\d+), lr=([\d.e-]+)"
                         r"(?:×[\d.]+\^epoch)?, Q/X init=(\w+)\*\*", _section("hasc_flickr_fs"))
    assert selected, "the HASC section names its selected point"
    _, l2, att, lr, aux = selected.groups()
    config = config_lib.load_config(os.path.join(REPO, "configs", "hasc_flickr_fs.yaml"))
    h = config.model.hasc
    assert (h.l2, h.attention_dim, config.trainer.learning_rate, h.auxiliary_init) == \
        (float(l2), int(att), float(lr), aux)
    assert h.aspects == ["upload", "social", "creator"] and h.attention == "att" and config.data.features == ""
    # The peers_bpr row: this config at D = 64, P and W from the run of the BPR-MF SGD recipe (LearnBPR, the
    # shipped config's learner) at the point the section's grid selected on the train holdout.
    peers = _section("peers_bpr")
    row = re.search(r"\| tfvrec HASC on the strongest tfvrec BPR-MF \| (?:[^|]+ \| )+"
                    r"configs/hasc_flickr_fs.yaml with model.hasc.embedding_dim=(\d+) and P, W from the run of "
                    r"tfvrec BPR-MF \((?:shipped: BPR-Opt, SGD|BPR-Opt, SGD; selected on the grid)\)", peers)
    assert row, "the peers_bpr section reports HASC on the BPR-MF SGD recipe"
    assert h.embedding_dim == int(row.group(1)) == 64
    # Its BPR-MF init (trained into <model_dir>/bpr_init) is exactly configs/bpr_flickr_fs.yaml's run.
    init = bpr_init_config(config)
    shipped = config_lib.load_config(os.path.join(REPO, "configs", "bpr_flickr_fs.yaml"))
    assert init.model.name == shipped.model.name == "bpr"
    for section in ("data", "trainer"):
        assert dataclasses.asdict(getattr(init, section)) == dataclasses.asdict(getattr(shipped, section)), section
    assert dataclasses.asdict(init.model.bpr) == dataclasses.asdict(shipped.model.bpr)
    assert init.runtime.seed == shipped.runtime.seed


def test_demo_trains_the_visual_model_against_the_papers_baselines_and_names_the_next_commands():
    config = config_lib.load_config(os.path.join(REPO, "configs", "demo.yaml"))
    assert config.model.name == "curatornet" and config.data.source == "synthetic" and config.data.features
    assert config.eval.baselines == ["visrank", "vbpr", "bpr", "popularity", "random"]
    makefile = open(os.path.join(REPO, "Makefile")).read()
    demo = makefile[makefile.index("\ndemo:"):makefile.index("\ntest:")]
    assert "configs/demo.yaml" in demo
    for command in ("tensorboard --logdir", "tfvrec recommend", "tfvrec report", "tfvrec export", "tfvrec serve"):
        assert command in demo, command


def test_no_shipped_config_selects_on_the_split_it_reports():
    """Tuning never sees the reported split: early stopping (the run's model selection) reads another split
    than the one its table reports — a train holdout carved from training, or the data set's own validation
    split when the table reports `test`."""
    for name, path in sorted(config_lib.shipped_configs().items()):
        config = config_lib.load_config(path)
        reported = config.eval.split
        if config.data.split == "new_items" and config.data.test_item_fraction == 0:
            # No test items (a production recipe judged later on new items): what it prints is the validation
            # figure it selected on, never a reported one; its test figures are the benchmark's (which holds out
            # test items), and the config says so.
            assert reported == "validation", name
            assert "tools/bench_new_items.py" in open(path).read(), name
            continue
        assert config.trainer.validation_split != reported, (name, reported)
        if config.data.source == "import" and config.trainer.validation_split == "validation":
            assert reported == "test", name  # a data set's own validation split, never the reported one


NEW_ITEMS = {"curatornet": ["visrank", "vbpr", "metadata_knn", "visual_knn", "bpr", "popularity", "random"],
             "cdl": ["twonets", "borda_features", "visual_knn", "metadata_knn", "bpr", "popularity", "random"],
             "vbpr": ["visual_knn", "metadata_knn", "bpr", "popularity", "random"]}


def test_new_items_configs_train_on_every_posters_like_with_an_item_disjoint_validation():
    """configs/<model>_posters_new_items.yaml (issue 27): the posters likes, split new_items with validation items
    for early stopping on new-item R@20, the new_items and full protocols, every baseline row that applies; the
    VBPR and BPR-MF rows of CuratorNet's table are the recipes of the VBPR config and of its bpr row."""
    from tfvrec.models.bpr import baselines as bpr_baselines
    from tfvrec.models.vbpr import baselines as vbpr_baselines
    configs = {}
    for model, baselines in NEW_ITEMS.items():
        config = config_lib.load_config(os.path.join(REPO, "configs", f"{model}_posters_new_items.yaml"))
        configs[model] = config
        assert config.model.name == model
        assert config.data.importer == "movielens_posters" and config.data.import_options["only_with_poster"] == "true"
        # Every like but the validation items' trains: no test items (the run is judged on new posters later).
        assert config.data.split == "new_items" and config.data.validation_item_fraction > 0
        assert config.data.test_item_fraction == 0
        assert (config.trainer.validation_split, config.trainer.validation_protocol, config.trainer.validation_metric) \
            == ("validation", "new_items", "recall@20")
        assert config.eval.split == "validation" and config.eval.protocols == ["new_items", "full"]
        assert config.eval.baselines == baselines
        assert config.data.split_seed == configs["curatornet"].data.split_seed
    # The vbpr row of CuratorNet's table trains what configs/vbpr_posters_new_items.yaml trains.
    row, shipped = vbpr_baselines.baseline_config(configs["curatornet"]), configs["vbpr"]
    assert dataclasses.asdict(row.model.vbpr) == dataclasses.asdict(shipped.model.vbpr)
    for key in ("optimizer", "learning_rate", "batch_size", "epochs", "steps_per_epoch", "validation_split",
                "validation_protocol", "validation_metric", "validation_max_users", "early_stopping_patience"):
        assert getattr(row.trainer, key) == getattr(shipped.trainer, key), key
    # Every table trains the same BPR-MF row.
    bpr = {model: bpr_baselines.baseline_config(config) for model, config in configs.items()}
    for model in ("cdl", "vbpr"):
        assert dataclasses.asdict(bpr[model].trainer) == dataclasses.asdict(bpr["curatornet"].trainer)
        assert dataclasses.asdict(bpr[model].model.bpr) == dataclasses.asdict(bpr["curatornet"].model.bpr)
