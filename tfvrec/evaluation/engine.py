"""How a run is evaluated: its model package's evaluation (``ModelSpec.evaluation``, e.g. a tag
recommender's), else the user–item protocols (`tfvrec.evaluation.user_items`).

Every evaluation module has the same two functions: ``make_validation(config, dataset, model,
frame)`` → a callable the trainer runs after each epoch, and ``evaluate_run(config, dataset, model,
note="", heldout_frame=None, heldout_name=None, protocol_names=None, write=True)`` → the final table,
printed and written to ``metrics.json`` in the run directory (``note``: said in its title, e.g. that
the run is unfinished).
"""
from tfvrec import registry
from tfvrec.evaluation import user_items


def module_of(config):
    spec = registry.model_spec(config.model.name)
    return registry.resolve(spec.evaluation) if spec.evaluation else user_items


def make_validation(config, dataset, model, frame):
    return module_of(config).make_validation(config, dataset, model, frame)


def evaluate_run(config, dataset, model, note="", heldout_frame=None, heldout_name=None, protocol_names=None,
                 write=True):
    return module_of(config).evaluate_run(config, dataset, model, note=note, heldout_frame=heldout_frame,
                                          heldout_name=heldout_name, protocol_names=protocol_names, write=write)
