"""The model zoo: one package per model (``tfvrec/models/<name>/``), each registering a
`tfvrec.registry.ModelSpec` when imported (`tfvrec.registry.load_models`); the registry builds
the configured one (`tfvrec.registry.create_model`)."""
