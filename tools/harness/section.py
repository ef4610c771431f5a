"""`Section` (one benchmark: one section of docs/benchmarks.md) and `Context` (what a running section gets)."""
import ast
import contextlib
import dataclasses
import importlib.util
import os
import shutil
import sys
from typing import Callable, Dict, Tuple

from harness import REPO


class MissingPackage(SystemExit):
    """A full (not quick) run of a section whose optional packages (the bench extra) are not installed."""


@dataclasses.dataclass
class Section:
    """One benchmark, publishing one section of docs/benchmarks.md.

    ``name``: the section's marker name; ``title``: one line for ``--list``; ``run(ctx) -> markdown``;
    ``paths``: the code whose behaviour it measures, relative to the repository (tfvrec packages or files,
    configs, shared tool modules) — the module defining ``run`` is always added (`measured_paths`);
    ``options``: its knobs with their full-run values, ``quick``: the values ``--quick`` uses instead (toy
    sizes that check the code end to end in seconds); ``needs``: optional packages (peers of the bench
    extra), ``data``: real data sets under ``$TFVREC_SHARED_DATA`` it reads; ``runs``: the folder of its
    training runs under the runs root (default: the module's name); ``group``: a name several sections
    answer to (``--sections peers``); ``make``: the make target that runs it.
    """
    name: str
    title: str
    run: Callable
    paths: Tuple[str, ...] = ()
    options: Dict[str, object] = dataclasses.field(default_factory=dict)
    quick: Dict[str, object] = dataclasses.field(default_factory=dict)
    needs: Tuple[str, ...] = ()
    data: Tuple[str, ...] = ()
    runs: str = ""
    group: str = ""
    make: str = ""

    def __post_init__(self):
        unknown = set(self.quick) - set(self.options)
        if unknown:
            raise ValueError(f"section {self.name}: quick values for undeclared options {sorted(unknown)}")

    @property
    def module_path(self):
        """The file defining ``run``, relative to the repository."""
        module = sys.modules[self.run.__module__]
        return os.path.relpath(os.path.abspath(module.__file__), REPO)

    def measured_paths(self):
        return (self.module_path,) + tuple(p for p in self.paths if p != self.module_path)

    @property
    def runs_folder(self):
        return self.runs or self.run.__module__.split(".")[-1]

    def resolve_options(self, quick=False, overrides=None):
        values = dict(self.options)
        if quick:
            values.update(self.quick)
        for key, value in (overrides or {}).items():
            if key not in values:
                raise KeyError(f"section {self.name} has no option {key!r} "
                               f"(it has: {', '.join(sorted(values)) or 'none'})")
            values[key] = value
        return values

    def missing_packages(self, without=()):
        """Its optional packages not installed (or named in ``without``: run as if they were not)."""
        return [p for p in self.needs if p in without or importlib.util.find_spec(p) is None]


def parse_value(text):
    """An option's value from the command line: a Python literal (1000, 0.5, True, [1, 2]) or else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class Context:
    """What a running section gets: its options, the quick flag, where runs and caches go, and where it says
    what it did not run.

    ``runs_root``: training runs and scratch (a section's own under ``runs_root/<section.runs_folder>``);
    ``cache_dir``: the data sets' import cache (``data.cache_dir`` of every config `config` loads).
    """

    def __init__(self, section, quick=False, options=None, runs_root=None, cache_dir=None, log=None, without=()):
        self.section, self.quick = section, quick
        self.options = section.resolve_options(quick, options)
        self.runs_root = os.path.abspath(runs_root or os.path.join(REPO, "runs", "quick" if quick else ""))
        self.cache_dir = os.path.abspath(cache_dir or os.path.join(REPO, "data_cache"))
        self._log = log or print
        self.not_run = []  # (what, why): parts of the section that did not run (quick mode without a peer)
        self.reused = []  # harness.runs.Trained of the runs reused rather than trained
        self.trained_here = set()  # run directories this section trained
        self.without = tuple(without)
        self.missing = section.missing_packages(self.without)
        self.fresh = False  # train every run again (tools/bench.py --fresh)
        self.failed = None  # set by a section whose measurement failed its own check (the exit code says it)

    # -- options and logging ---------------------------------------------------------------
    def opt(self, name):
        return self.options[name]

    def log(self, message):
        self._log(f"[{self.section.name}] {message}")

    # -- optional packages -----------------------------------------------------------------
    def has(self, package):
        """Is optional package ``package`` installed? (A full run of the section has checked ``needs`` already.)"""
        return package not in self.missing and package not in self.without and \
            importlib.util.find_spec(package) is not None

    def skip(self, what, package):
        """Record that ``what`` did not run because ``package`` is missing (allowed in quick mode only)."""
        if not self.quick:
            raise MissingPackage(f"section {self.section.name}: {what} needs {package}, which is not installed "
                                 "(pip install the bench extra's packages, setup.py)")
        self.not_run.append((what, f"{package} not installed"))
        self.log(f"not run: {what} ({package} not installed)")

    # -- where things go -------------------------------------------------------------------
    def run_dir(self, *parts):
        """A training run's directory under this section's runs folder."""
        return os.path.join(self.runs_root, self.section.runs_folder, *parts)

    def shared_dir(self, *parts):
        """A run shared by several sections (the same config and settings: trained once, reused by each)."""
        return os.path.join(self.runs_root, "bench_shared", *parts)

    @contextlib.contextmanager
    def scratch(self, name):
        """A fresh scratch directory (exports, servers' files), removed afterwards."""
        path = self.run_dir(f"scratch-{name}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def owns(self, path):
        root = os.path.join(self.runs_root, "")
        return os.path.abspath(path).startswith(root)

    # -- configs and runs ------------------------------------------------------------------
    def config(self, path, sets=()):
        """A config (a file, or a name under configs/) with this context's data cache."""
        from tfvrec import config as config_lib
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(REPO, "configs", path)
        return config_lib.load_config(path, [f"data.cache_dir={self.cache_dir}", *sets])

    def trained(self, config, fresh=None, train=None):
        """The finished run of ``config`` (trained unless a run of the same code is there): `harness.runs`."""
        from harness import runs
        return runs.trained(self, config, fresh=self.fresh if fresh is None else fresh, train=train)
