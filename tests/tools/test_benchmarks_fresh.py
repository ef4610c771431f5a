"""No figure of docs/benchmarks.md is older than the code it measures (the harness's check, `harness.fresh`).

A section is stale when the code paths its `Section` declares changed since the commit its stamp names,
when it has no stamp (measured before the harness recorded commits), or when no section in tools/
declares it. The cure is to re-measure it on an idle machine (``python tools/bench.py --sections NAME``,
which writes a new stamp) or to remove it from the document; ``python tools/bench.py --stale`` lists them.
"""
import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
from harness import fresh  # noqa: E402


def test_no_section_of_docs_benchmarks_md_is_stale():
    verdicts = fresh.check()
    assert verdicts, "docs/benchmarks.md has no section"
    stale = [v for v in verdicts if v.stale]
    assert not stale, (f"{len(stale)} of {len(verdicts)} sections of docs/benchmarks.md are stale (re-measure them "
                       "with python tools/bench.py --sections NAME on an idle machine, or remove them):\n"
                       + "\n".join(str(v) for v in stale))
