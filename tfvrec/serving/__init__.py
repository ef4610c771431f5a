"""Export trained runs as TF Serving SavedModels, and serve them (``tfvrec export | serve | index``).

- `tfvrec.serving.export`: the SavedModel (signatures, retrieval index, atomic
  versions, ``models.config``);
- `tfvrec.serving.adapters`: what each model contributes to it (query and item
  vectors, exact scores, model-specific signatures);
- `tfvrec.serving.server`: TF Serving's gRPC and REST API over those exports;
- `tfvrec.serving.cli`: the command line.

Deployment guide: ``export/README.md``.
"""

# Server limits (here so the CLI can show them without importing TensorFlow).
DEFAULT_MAX_REQUEST_BYTES = 16 * 2 ** 20
DEFAULT_MAX_BATCH_SIZE = 256
