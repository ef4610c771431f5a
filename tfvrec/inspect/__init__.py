"""See what a model learned: TensorBoard beyond scalars and a visual HTML report.

* `hparams` — one HParams row per run (resolved config keys and final test metrics);
* `projector` — the vectors the export index holds, with metadata and an image sprite;
* `epoch` — per-epoch histograms (embedding norms, model-specific attention) and a grid
  of a few fixed validation users' history and top-K recommendations, hits outlined;
* `report` — ``tfvrec report``: a self-contained HTML page of users, their history and
  recommendations (with HASC's explanations, CuratorNet's nearest history item);
* `pictures` — item thumbnails, sprites and PNG encoding shared by the others;
* `cli` — ``tfvrec tensorboard`` and ``tfvrec report``.
"""
