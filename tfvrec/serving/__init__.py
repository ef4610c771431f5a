"""Export trained runs as TF Serving SavedModels, and serve them (``tfvrec export | serve | index``).

- `tfvrec.serving.parts`: the adapter contract — what each model contributes (query
  and item vectors, exact scores, model-specific signatures); each model package's
  ``serving.py`` is its adapter;
- `tfvrec.serving.module`: the in-graph `ServingModule`, where a request is answered;
- `tfvrec.serving.versions`: atomic version writing, warm-up requests, verification;
- `tfvrec.serving.export`: ``tfvrec export`` / ``tfvrec index`` (a run → a version);
- `tfvrec.serving.server`: TF Serving's gRPC and REST API over those exports;
- `tfvrec.serving.cli`: the command line.

Deployment guide: ``export/README.md``.
"""

# Server limits (here so the CLI can show them without importing TensorFlow).
DEFAULT_MAX_REQUEST_BYTES = 16 * 2 ** 20
DEFAULT_MAX_BATCH_SIZE = 256
