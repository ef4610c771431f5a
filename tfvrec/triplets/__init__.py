"""Training triplets written once, as sharded TFRecords, and streamed by the trainer.

``tfvrec triplets --config CFG --out DIR`` writes a model's training triplets (CuratorNet's
D_S, CDL's per-epoch triplets) to ``DIR/triplets-0000s-of-0000S.tfrecord.gz`` plus a
manifest ``DIR/triplets.json``; ``model.<name>.triplets_path: DIR`` makes the trainer read
them instead of sampling in process. The records are the in-process stream, in its order:
a run trained from them equals a run sampling in process with the same seed.

Files: ``manifest.py`` (the manifest and the identity of the config and data the records
were made for; TensorFlow-free), ``shards.py`` (shard names, the TFRecord encoding, the
reader), ``generate.py`` (the in-process writer and the common driver), ``beam_pipeline.py``
(the same records from an Apache Beam pipeline), ``cli.py`` (``tfvrec triplets``). A model
takes part by naming a module in ``ModelSpec.triplets`` (its record schema and generation
units; `generate.TripletSource`).
"""
