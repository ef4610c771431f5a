"""CuratorNet (Cartagena et al., *CuratorNet: Visually-aware Recommendation of Art Images*).

Files: ``config.py`` (section ``model.curatornet``), ``model.py`` (the towers and the
loss), ``sampling.py`` (guidelines D1–D6) with ``clusters.py`` (visual clusters) and
``history.py`` (purchase baskets), ``triplet_source.py`` and ``triplet_records.py`` (D_S
written as TFRecords by ``tfvrec triplets``, streamed by the trainer), ``baselines.py``
(VisRank, Oracle; VBPR is a model of its own, `tfvrec.models.vbpr`), ``serving.py`` (export: both
towers, so new users and items are answered without retraining, by ``tfvrec recommend`` and the server
alike).
"""
from tfvrec import registry
from tfvrec.models.curatornet.config import EXPERIMENTS, CuratorNetConfig, check

registry.register_model(registry.ModelSpec(
    name="curatornet", config=CuratorNetConfig, experiments=EXPERIMENTS, check=check,
    create="tfvrec.models.curatornet.model:create", serving="tfvrec.models.curatornet.serving:build",
    baselines="tfvrec.models.curatornet.baselines",
    triplets="tfvrec.models.curatornet.triplet_source", input_kind="triplets",
    inputs="tfvrec.models.curatornet.model:training_inputs",
    samplers={"guidelines": "tfvrec.models.curatornet.model:guideline_sampler"},
    summary="Cartagena et al., CuratorNet: Visually-aware Recommendation of Art Images"))
