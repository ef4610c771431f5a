"""Shipped configs reproduce what the docs say they do."""
import os
import re

from tfvrec import config as config_lib
from tfvrec.models.hasc.warm_start import bpr_init_config

from conftest import REPO


def test_hasc_flickr_config_is_the_recipe_the_benchmark_selected():
    """`tfvrec train --config configs/hasc_flickr_fs.yaml` trains the HASC row docs/benchmarks.md reports."""
    text = open(os.path.join(REPO, "docs", "benchmarks.md")).read()
    section = re.search(r"<!-- BEGIN hasc_flickr_fs -->(.*?)<!-- END hasc_flickr_fs -->", text, re.S).group(1)
    selected = re.search(r"Selected hyperparameters: \*\*D=(\d+), λ=([\d.e-]+), att=(\d+), lr=([\d.e-]+)"
                         r"(?:×[\d.]+\^epoch)?, Q/X init=(\w+)\*\*", section)
    assert selected, "the HASC section names its selected point"
    dim, l2, att, lr, aux = selected.groups()
    config = config_lib.load_config(os.path.join(REPO, "configs", "hasc_flickr_fs.yaml"))
    h = config.model.hasc
    assert (h.embedding_dim, h.l2, h.attention_dim, config.trainer.learning_rate, h.auxiliary_init) == \
        (int(dim), float(l2), int(att), float(lr), aux)
    assert h.aspects == ["upload", "social", "creator"] and h.attention == "att" and config.data.features == ""
    # Its BPR-MF init is the benchmark's: HASC's trainer settings at the BPR learning rate of the grid.
    bpr = bpr_init_config(config)
    assert (bpr.model.name, bpr.model.bpr.embedding_dim, bpr.trainer.learning_rate, bpr.trainer.batch_size,
            bpr.trainer.negatives_per_positive) == ("bpr", int(dim), 0.001, 512, 5)


def test_demo_trains_the_visual_model_against_the_papers_baselines_and_names_the_next_commands():
    config = config_lib.load_config(os.path.join(REPO, "configs", "demo.yaml"))
    assert config.model.name == "curatornet" and config.data.source == "synthetic" and config.data.features
    assert config.eval.baselines == ["visrank", "vbpr", "bpr", "popularity", "random"]
    makefile = open(os.path.join(REPO, "Makefile")).read()
    demo = makefile[makefile.index("\ndemo:"):makefile.index("\ntest:")]
    assert "configs/demo.yaml" in demo
    for command in ("tensorboard --logdir", "tfvrec recommend", "tfvrec report", "tfvrec export", "tfvrec serve"):
        assert command in demo, command
