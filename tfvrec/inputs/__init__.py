"""The input layer: the training stream a model declares (after RecBole's ``input_type``).

A model's package declares its input kind (``ModelSpec.input_kind``):

* ``pairs`` — LearnBPR's bootstrap (`tfvrec.inputs.pairs`): BPR-MF, VBPR, HASC;
* ``triplets`` — a `tfvrec.inputs.triplets.Sampler`'s stream (CuratorNet's guidelines, CDL's §5
  negatives), or the same triplets read back from records (`tfvrec.inputs.records`);
* ``posts`` — a tag recommender's posts (CNN-PerMLP).

For the kinds other than ``pairs`` the package names its builder (``ModelSpec.inputs``:
``build(config, dataset, model, seed) -> (tf.data.Dataset, steps_per_epoch)``). Every stream is
infinite, globally batched, and a pure function of the seed, so a resumed run that skips the
batches it trained on sees exactly what an uninterrupted run would.
"""
from tfvrec import registry
from tfvrec.inputs.pairs import bootstrap_pairs

KINDS = ("pairs", "triplets", "posts")


def training_stream(config, dataset, model, seed):
    """``(tf.data.Dataset, steps_per_epoch)`` of the run's model, as its package declares."""
    spec = registry.model_spec(config.model.name)
    if spec.input_kind == "pairs" and not spec.inputs:
        return bootstrap_pairs(dataset, config.trainer, seed)
    return registry.resolve(spec.inputs)(config, dataset, model, seed)
