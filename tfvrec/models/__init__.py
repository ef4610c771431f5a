"""Model registry: ``model.name`` in the config → a module with ``create(config, dataset)``."""
import importlib

# name -> module path; modules are imported lazily so one model's dependencies never
# slow down or break another's.
MODEL_MODULES = {
    "bpr": "tfvrec.models.bpr",
    "curatornet": "tfvrec.models.curatornet",
    "hasc": "tfvrec.models.hasc",
}


def create_model(config, dataset):
    name = config.model.name
    if name not in MODEL_MODULES:
        raise ValueError(f"model.name {name!r} has no implementation; available: {sorted(MODEL_MODULES)}")
    try:
        module = importlib.import_module(MODEL_MODULES[name])
    except ModuleNotFoundError as e:
        if e.name != MODEL_MODULES[name]:
            raise
        raise ValueError(f"model.name {name!r}: {MODEL_MODULES[name]} is not implemented yet") from None
    return module.create(config, dataset)
