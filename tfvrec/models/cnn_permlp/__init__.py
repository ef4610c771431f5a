"""CNN-PerMLP (Nguyen et al., *Personalized Deep Learning for Tag Recommendation*, PAKDD 2017):
the zoo's tag recommender.

Files: ``config.py`` (section ``model.cnn_permlp`` and the experiments of the paper's
comparison), ``posts.py`` (posts and the leave-posts-out split), ``patches.py`` (eq. 2's
patches), ``layers.py`` (eq. 6's personalized layer, the colour histogram), ``model.py``
(the network, eqs. 2-8, and PITF), ``evaluation.py`` (F1 / P / R @ K with MP and MP-u),
``tagger.py`` (top-K tags for an image: Python and ``tfvrec tags``), ``serving.py`` (export).
"""
from tfvrec import registry
from tfvrec.models.cnn_permlp.config import EXPERIMENTS, CNNPerMLPConfig, check

registry.register_model(registry.ModelSpec(
    name="cnn_permlp", config=CNNPerMLPConfig, experiments=EXPERIMENTS, check=check,
    create="tfvrec.models.cnn_permlp.model:create", input_kind="posts",
    inputs="tfvrec.models.cnn_permlp.model:training_inputs", losses=("logistic", "hinge"),
    serving="tfvrec.models.cnn_permlp.serving:build",
    evaluation="tfvrec.models.cnn_permlp.evaluation", commands="tfvrec.models.cnn_permlp.cli",
    summary="Nguyen et al., Personalized Deep Learning for Tag Recommendation, PAKDD 2017"))
