"""BPR-MF, the zoo's baseline (Rendle et al., *BPR: Bayesian Personalized Ranking from
Implicit Feedback*, UAI 2009). Model: `tfvrec.models.bpr.model`."""
from tfvrec import registry
from tfvrec.models.bpr.config import EXPERIMENTS, BPRConfig, check

registry.register_model(registry.ModelSpec(
    name="bpr", config=BPRConfig, experiments=EXPERIMENTS, check=check,
    create="tfvrec.models.bpr.model:create", serving="tfvrec.models.bpr.serving:build",
    baselines="tfvrec.models.bpr.baselines",
    summary="Rendle et al., BPR: Bayesian Personalized Ranking from Implicit Feedback, UAI 2009"))
