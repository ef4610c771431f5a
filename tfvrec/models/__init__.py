"""The model zoo: one package per model (``tfvrec/models/<name>/``), each registering a
`tfvrec.registry.ModelSpec` when imported; `create_model` builds the configured one."""
from tfvrec import registry


def create_model(config, dataset):
    """The Keras model of ``config.model.name`` for ``dataset`` (its package's ``create``)."""
    spec = registry.model_spec(config.model.name, "model.name")
    return registry.resolve(spec.create)(config, dataset)
