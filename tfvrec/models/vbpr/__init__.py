"""VBPR (He & McAuley, *VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback*, AAAI 2016):
the visual baseline of CuratorNet's tables, a model of its own.

Files: ``config.py`` (section ``model.vbpr``), ``model.py`` (the predictor, eq. 2, and its training
stream), ``serving.py`` (export: new items by their visual part), ``baselines.py`` (the ``vbpr`` row of
any user–item table, a run of this model kept inside the run it serves).
"""
from tfvrec import registry
from tfvrec.models.vbpr.config import EXPERIMENTS, VBPRConfig, check

registry.register_model(registry.ModelSpec(
    name="vbpr", config=VBPRConfig, experiments=EXPERIMENTS, check=check,
    create="tfvrec.models.vbpr.model:create", serving="tfvrec.models.vbpr.serving:build",
    baselines="tfvrec.models.vbpr.baselines", input_kind="pairs", inputs="tfvrec.models.vbpr.model:training_inputs",
    losses=("logistic", "hinge"),
    summary="He & McAuley, VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback, AAAI 2016"))
