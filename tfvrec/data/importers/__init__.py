"""Importers: the four real data sets -> the tfvrec data set format (one module per data set).

Each importer reads one raw folder, derives the tfvrec tables (users, items,
interaction splits, social links, post tags), writes them with
`tfvrec.data.dataset.write_dataset` (atomic) and records in ``dataset.yaml`` where
the data came from, what was derived and how, and the caveats found on the way.

Raw ids are kept as the raw strings (never re-indexed), so any raw file of the
same source -- e.g. flickr_fs's held-out ``likes_val.tsv`` -- can be evaluated
directly against the imported data set's id space.

Raw-file problems (missing file, missing column, unparsable row, unresolvable id)
raise `DataError` naming the raw file, the line and the reason. Rows are dropped
only when the format forbids them (exact duplicates, tags on unknown artists), and
then always logged and counted in the metadata, never silently.

Use::

    from tfvrec.data.importers import import_dataset
    import_dataset("flickr_fs", "../shared/data/flickr_fs", "data/flickr_fs")

or ``python tools/import_dataset.py flickr_fs --raw ../shared/data/flickr_fs --out data/flickr_fs``.
"""
import inspect
import os

from tfvrec import outputs, progress
from tfvrec.data.dataset import load_dataset
from tfvrec.data.errors import DataError
from tfvrec.data.importers.flickr_fs import import_flickr_fs
from tfvrec.data.importers.lastfm_2k import import_lastfm_2k
from tfvrec.data.importers.movielens_posters import import_movielens_posters
from tfvrec.data.importers.ugallery import import_ugallery
from tfvrec.data.importers.raw import _option_error, read_raw  # noqa: F401  (read_raw: public)

IMPORTERS = {
    "flickr_fs": import_flickr_fs,
    "ugallery": import_ugallery,
    "movielens_posters": import_movielens_posters,
    "lastfm_2k": import_lastfm_2k,
}


def importer_options(name):
    """``{option: default}`` accepted by importer ``name``."""
    params = inspect.signature(IMPORTERS[name]).parameters
    return {k: p.default for k, p in params.items() if k not in ("raw_dir", "out_dir", "overwrite")}




def _coerce(name, key, value, default):
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return type(default)(value)
    except ValueError:
        raise _option_error(f"{name}: option {key}={value!r} must be a {type(default).__name__}") from None


def import_dataset(name, raw_dir, out_dir, overwrite=False, **options) -> str:
    """Import raw data set ``name`` from ``raw_dir`` into a tfvrec data set at ``out_dir``; returns its path.

    ``options`` are importer specific (see `importer_options`); string values (from
    the command line) are converted to the default's type. The written directory
    is loaded back once with `load_dataset`, so an importer bug surfaces here and
    not in a training run.
    """
    if name not in IMPORTERS:
        raise _option_error(f"unknown data set {name!r}; importers exist for {sorted(IMPORTERS)}")
    if not os.path.isdir(raw_dir):
        raise DataError(raw_dir, f"raw {name} folder not found")
    accepted = importer_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise _option_error(f"{name}: unknown option(s) {unknown}; valid options: "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in accepted.items()) or 'none'}")
    options = {k: _coerce(name, k, v, accepted[k]) for k, v in options.items()}
    # Before reading anything: --out must not be (or hold, or lie in) the raw folder, and --overwrite
    # replaces only a data set tfvrec wrote (tfvrec.outputs).
    outputs.prepare(out_dir, "dataset", overwrite=overwrite, inputs={"--raw": raw_dir})
    with progress.bar(total=2, desc=f"importing {name}", unit="step") as bar:
        path = IMPORTERS[name](raw_dir, out_dir, overwrite=overwrite, **options)
        bar.update()
        load_dataset(path)
        bar.update()
    return path


def parse_options(pairs):
    """``["k=v", ...]`` -> ``{k: v}`` (values stay strings; `import_dataset` converts them)."""
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _option_error(f"--option expects key=value, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def add_import_arguments(parser):
    """Add the import arguments to an argparse parser (shared by tools/import_dataset.py and the CLI)."""
    parser.add_argument("name", choices=sorted(IMPORTERS), help="raw data set to import")
    parser.add_argument("--raw", required=True, help="raw data folder, e.g. ../shared/data/<name>")
    parser.add_argument("--out", required=True, help="output tfvrec data set directory")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a data set tfvrec wrote at --out (never another directory, nor --raw)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="importer option, repeatable (ugallery: holdout=last_basket|none; "
                             "movielens_posters: min_rating=4.0; lastfm_2k: encoding=auto)")
    return parser


def run_import(args):
    """Run an import from parsed `add_import_arguments` args; returns the written path."""
    path = import_dataset(args.name, args.raw, args.out, overwrite=args.overwrite, **parse_options(args.option))
    print(path)
    return path
