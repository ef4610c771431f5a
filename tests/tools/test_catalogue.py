"""The catalogue of sections: what each declares is real, every bench and chaos target of the Makefile goes through
``tools/bench.py``, and the document names no section that nothing declares."""
import os
import re
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
from harness import catalogue, document  # noqa: E402

SECTIONS = catalogue.sections()


@pytest.mark.parametrize("name", list(SECTIONS))
def test_a_section_declares_code_that_exists_and_toy_sizes(name):
    section = SECTIONS[name]
    missing = [p for p in section.measured_paths() if not os.path.exists(os.path.join(REPO, p))]
    assert not missing, f"{name} declares paths that do not exist: {missing}"
    assert section.module_path.startswith("tools/") and section.title and section.make
    for data in section.data:
        assert re.fullmatch(r"[a-z0-9_]+", data)


def test_every_make_bench_target_runs_tools_bench_py():
    makefile = open(os.path.join(REPO, "Makefile")).read()
    targets = dict(re.findall(r"^((?:bench|chaos)[\w-]*):.*\n((?:\t.*\n)+)", makefile, re.M))
    assert {"bench-bpr", "bench-hasc", "bench-peers", "bench-retrieval", "bench-shards", "bench-cdl",
            "bench-cnn-permlp", "chaos-train", "chaos-serve"} <= set(targets)  # the names from before the harness
    for target, recipe in targets.items():
        assert "tools/bench.py" in recipe, f"make {target} does not go through tools/bench.py:\n{recipe}"
        assert not re.search(r"tools/(bench|chaos)_\w+\.py", recipe), target
    for section in SECTIONS.values():
        assert section.make in targets, f"{section.name}: make {section.make} is not in the Makefile"


def test_every_section_of_the_document_is_declared():
    undeclared = set(document.read_sections()) - set(SECTIONS)
    assert not undeclared, f"docs/benchmarks.md sections no tool declares: {sorted(undeclared)}"


def test_tool_modules_import_no_tensorflow_at_import_time():
    """--list and --stale stay instant: heavy imports live inside the sections' functions."""
    import subprocess
    code = ("import sys; sys.path.insert(0, 'tools'); from harness import catalogue; catalogue.sections(); "
            "heavy = [m for m in ('tensorflow', 'cornac', 'faiss', 'torch') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
