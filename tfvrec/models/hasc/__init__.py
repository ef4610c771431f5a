"""HASC (Wu et al., *Explainable Social Contextual Image Recommendation with Hierarchical
Attention*).

Files: ``config.py`` (section ``model.hasc``), ``model.py`` (the hierarchical attention
and eq. 3), ``warm_start.py`` (P, W from a trained BPR-MF), ``retrieval.py``
(two-stage top-K), ``explain.py`` (γ, α, β: ``tfvrec explain``), ``serving.py`` (export).
"""
from tfvrec import registry
from tfvrec.models.hasc.config import EXPERIMENTS, HASCConfig, check

registry.register_model(registry.ModelSpec(
    name="hasc", config=HASCConfig, experiments=EXPERIMENTS, check=check,
    create="tfvrec.models.hasc.model:create", serving="tfvrec.models.hasc.serving:build",
    warm_starts="tfvrec.models.hasc.warm_start:warm_starts", commands="tfvrec.models.hasc.cli",
    summaries="tfvrec.models.hasc.explain:summaries", losses=("logistic", "hinge"),
    explain="tfvrec.models.hasc.explain:explanations",
    summary="Wu et al., Explainable Social Contextual Image Recommendation with Hierarchical Attention"))
