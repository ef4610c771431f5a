"""The work of ``tfvrec train``, ``evaluate``, ``data validate`` and ``data synth`` (their arguments:
`tfvrec.cli`, which names these functions by reference, so building the parser imports no TensorFlow)."""
from tfvrec import config as config_lib
from tfvrec.data import synthetic
from tfvrec.data.dataset import load_dataset, read_interactions
from tfvrec.errors import ConfigError, quote
from tfvrec.evaluation import engine as evaluation
from tfvrec.evaluation.protocols import parse_protocol
from tfvrec.runs import Run
from tfvrec.training import trainer


def train(args):
    sets = list(args.set)
    if getattr(args, "skip_bad", False):  # models that read images: skip (and count) unreadable ones
        sets.append(f"model.{_model_name(args, sets)}.skip_bad_images=true")
    config = config_lib.load_config(config_lib.resolve_config_path(args.config), sets)
    trainer.train(config)


def _model_name(args, sets):
    model = config_lib.load_config(config_lib.resolve_config_path(args.config), sets).model
    name = model.name
    section = getattr(model, name)
    if not hasattr(section, "skip_bad_images"):
        raise config_lib.ConfigError(f"--skip-bad: model {name!r} reads no image files")
    return name


def _protocols(values):
    """``--protocol`` values, checked before any work (the valid forms in the message)."""
    for value in values or ():
        try:
            parse_protocol(value)
        except ValueError as e:
            raise ConfigError(f"--protocol {quote(value)}: {e}") from None
    return values or None


def evaluate(args):
    protocols = _protocols(args.protocol)
    if args.repeats < 0:
        raise ConfigError(f"--repeats {args.repeats}: must be ≥ 1 (or 0 for the run's eval.repeats)")
    run = Run(args.run)
    trainer.check_baselines(run.params, source=f"{args.run}/params.yaml")
    run.check_finished(allow_unfinished=args.allow_unfinished)
    config, dataset, model = run.load(allow_unfinished=True)
    if args.repeats:
        config.eval.repeats = args.repeats
    frame, name = None, None
    if args.test:
        frame, name = read_interactions(args.test, dataset, allow_headerless=True,
                                        truncated=config.data.truncated_rows), args.test
    evaluation.evaluate_run(config, dataset, model, note=run.note, heldout_frame=frame, heldout_name=name,
                            protocol_names=protocols)


def data_validate(args):
    dataset = load_dataset(args.path, truncated="drop" if args.drop_truncated_rows else "error")
    print(f"{dataset.path}: valid tfvrec data set '{dataset.name}'")
    print(f"  users {dataset.num_users:,}  items {dataset.num_items:,}  artists {len(dataset.artist_ids):,}")
    for split, frame in dataset.interactions.items():
        print(f"  {split:<10} {len(frame):,} interactions, {frame['user'].nunique():,} users")
    interacted = set().union(*(frame["item"].unique() for frame in dataset.interactions.values()))
    print(f"  items without any interaction {dataset.num_items - len(interacted):,} (kept: content-only items)")
    for name, frame in (("social", dataset.social), ("post_tags", dataset.post_tags), ("groups", dataset.groups)):
        if frame is not None:
            print(f"  {name:<10} {len(frame):,} rows")
    for name in dataset.feature_names():
        print(f"  features/{name}: {dataset.features(name).shape}")
    for note in dataset.metadata.get("dropped_rows", []):
        print(f"  dropped: {note}")


def data_synth(args):
    world = synthetic.SyntheticWorldConfig()
    for assignment in args.set:
        config_lib.override(world, config_lib.parse_set(assignment), source=f"--set {assignment}")
    try:
        world.validate()
    except ValueError as e:
        raise config_lib.ConfigError(f"--set: {e}") from None
    path = synthetic.write_world(args.out, world, overwrite=args.overwrite)
    print(f"Wrote the synthetic world to {path}")
