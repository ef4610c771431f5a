"""Test set-up: tf-keras, two logical CPU devices (to test MirroredStrategy), real-data paths."""
import os
import sys

import tfvrec  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import pytest
import tensorflow as tf

# Must happen before TensorFlow initialises its runtime: every test in this process
# sees two logical CPUs, so MirroredStrategy has two replicas to mirror across.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("TFVREC_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def shared_data(name):
    """Path of a real data set in ../shared/data, or skip the test with the reason."""
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.skip(f"real data set {name!r} not found at {path} (set TFVREC_SHARED_DATA)")
    return path


# MirroredStrategy over CPUs all-reduces sparse (embedding) gradients with collective ops, whose
# instance keys live in a per-process collective executor: a second MirroredStrategy in the same
# process can collide with the first ("Collective instance 100 expected type 0 ... got type 2").
# Tests marked `fresh_process` therefore run alone in a child pytest process.
_CHILD_ENV = "TFVREC_TEST_CHILD"


def pytest_configure(config):
    config.addinivalue_line("markers", "fresh_process: run this test alone in a new Python process")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("fresh_process") is None or os.environ.get(_CHILD_ENV):
        return None
    import subprocess
    import sys
    child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid],
                           cwd=str(pyfuncitem.config.rootpath), capture_output=True, text=True,
                           env=dict(os.environ, **{_CHILD_ENV: "1"}))
    if child.returncode != 0:
        pytest.fail(f"{pyfuncitem.nodeid} failed in its own process:\n{child.stdout[-6000:]}\n{child.stderr[-3000:]}",
                    pytrace=False)
    return True


# ----------------------------------------------------------------------------- tiny synthetic runs
# Shared by the inspection tests (tests/inspect/): rendered pixels, a few epochs, one process.

TINY_WORLD = ["data.synthetic.num_users=150", "data.synthetic.num_items=300", "data.synthetic.num_creators=30",
              "data.synthetic.num_artists=20", "trainer.verbose=0", "eval.repeats=1",
              "runtime.distribution_strategy=default"]


def tiny_run(name, config_file, tmp_path_factory, *sets):
    from tfvrec import config as config_lib
    from tfvrec.training import trainer
    root = str(tmp_path_factory.mktemp(name))
    config = config_lib.load_config(os.path.join(REPO, "configs", config_file), [
        f"runtime.model_dir={os.path.join(root, name)}", f"data.cache_dir={os.path.join(root, 'cache')}",
        *TINY_WORLD, *sets])
    rows = trainer.train(config)
    return config.runtime.model_dir, rows


@pytest.fixture(scope="session")
def hasc_run(tmp_path_factory):
    return tiny_run("hasc", "hasc_synthetic.yaml", tmp_path_factory, "trainer.epochs=2",
                    "eval.protocols=[sampled:100]")


@pytest.fixture(scope="session")
def curatornet_run(tmp_path_factory):
    return tiny_run("curatornet", "curatornet_synthetic.yaml", tmp_path_factory, "trainer.epochs=2",
                    "trainer.steps_per_epoch=20", "model.curatornet.num_triplets=20000",
                    "model.curatornet.num_clusters=10", "model.curatornet.cluster_restarts=2",
                    "eval.baselines=[popularity,random]", "eval.protocols=[full]")


# tests/fixtures/ holds files copied into a scratch copy of the repository (the toy model of
# tests/test_adding_a_model.py); they are not tests of this checkout.
collect_ignore_glob = ["fixtures/*"]


# ----------------------------------------------------------------------------- skips are visible
# `make test` prints every skip's reason (-rs). The only skips the README's test command allows, by the words
# of their reasons; with TFVREC_STRICT_SKIPS=1 (.ci/run sets it) any other skip — no Chromium, no shared data,
# no Apache Beam, a missing test extra — is a failure, so CI never passes by skipping what it should run.
DOCUMENTED_SKIPS = {
    "PyTorch": "the optional PyTorch cross-checks of the EfficientNet-Lite0 conversion (torch is not a test extra)",
    "non-loopback interface": "the server's bind test, on a machine with no network interface but loopback",
    "bench extra": "the bench peers' own chunked-training tests (cornac, implicit: the bench extra, not a test extra)",
}


class _HiddenPeers:
    """With TFVREC_BENCH_WITHOUT="cornac implicit ...", those packages cannot be imported in the test process
    either (the quick sections' children get ``--without``): a machine with the bench extra then runs the
    suite as CI does, which has not got it."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by TFVREC_BENCH_WITHOUT)", name=name)
        return None


if os.environ.get("TFVREC_BENCH_WITHOUT"):
    sys.meta_path.insert(0, _HiddenPeers(os.environ["TFVREC_BENCH_WITHOUT"].split()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or os.environ.get("TFVREC_STRICT_SKIPS") != "1":
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if not any(words in reason for words in DOCUMENTED_SKIPS):
        report.outcome = "failed"
        report.longrepr = (f"skipped, which TFVREC_STRICT_SKIPS=1 does not allow (the README's test command allows "
                           f"only: {'; '.join(DOCUMENTED_SKIPS.values())}): {reason}")


# The benchmark sections' quick run (tests/tools/test_sections.py) starts as soon as the session has collected its
# tests: its two child processes wait on nothing of the suite, so they run beside the tests before them instead of
# after them (the suite's longest wait, ~3 minutes of two busy cores). trylast: after -k / -m have deselected.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if config.option.collectonly or not any(os.path.basename(str(item.fspath)) == "test_sections.py"
                                            for item in items):
        return
    import tempfile
    import test_sections
    names = test_sections.selected_sections(items)
    if names:
        config._tfvrec_quick_root = tempfile.mkdtemp(prefix="tfvrec_bench_quick_")
        config._tfvrec_quick_run = test_sections.QuickRun(names, config._tfvrec_quick_root)


def pytest_terminal_summary(terminalreporter, config):
    """What the benchmark sections' quick run cost on this machine (a figure to watch for CI's time, not a test)."""
    run = getattr(config, "_tfvrec_quick_run", None)
    line = run.cost() if run is not None else None
    if line:
        terminalreporter.write_line(line)


def pytest_unconfigure(config):
    run = getattr(config, "_tfvrec_quick_run", None)
    if run is not None:
        import shutil
        run.stop()
        shutil.rmtree(config._tfvrec_quick_root, ignore_errors=True)
