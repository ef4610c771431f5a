"""CDL (Lei, Liu, Li, Zha, *Comparative Deep Learning of Hybrid Representations for Image
Recommendation*, CVPR 2016): a triple network that learns from pixels.

Files: ``config.py`` (section ``model.cdl`` and its experiments), ``model.py`` (image tower,
user tower, weighted distance, the comparative loss), ``user_vectors.py`` (§5: tags → tag
clusters → user vectors), ``sampling.py`` (§5: triplets), ``images.py`` (decoded pixels,
cached), ``protocol.py`` (§6.1.1: the 20-of-100 split; §5's interest-tag candidates),
``triplet_source.py`` and
``triplet_records.py`` (the triplets written as TFRecords by ``tfvrec triplets``, streamed by
the trainer), ``baselines.py`` (TwoNets, Borda count), ``serving.py`` (export: a squared-L2 index).
"""
from tfvrec import registry
from tfvrec.models.cdl.config import EXPERIMENTS, CDLConfig, check

registry.register_model(registry.ModelSpec(
    name="cdl", config=CDLConfig, experiments=EXPERIMENTS, check=check,
    create="tfvrec.models.cdl.model:create", input_kind="triplets", inputs="tfvrec.models.cdl.model:training_inputs",
    losses=("logistic", "hinge", "retrieval", "pointwise"), serving="tfvrec.models.cdl.serving:build",
    baselines="tfvrec.models.cdl.baselines", commands="tfvrec.models.cdl.cli",
    summaries="tfvrec.models.cdl.model:summaries", triplets="tfvrec.models.cdl.triplet_source",
    summary="Lei et al., Comparative Deep Learning of Hybrid Representations for Image Recommendation, CVPR 2016"))
# §5's candidate rule as protocol interest_candidates:N (each candidate shares an interest tag with the user).
registry.register_candidate_pool("interest_candidates", "tfvrec.models.cdl.protocol:interest_candidate_pool")
