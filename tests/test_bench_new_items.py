"""tools/bench_new_items.py --quick: every step of the new-items benchmark (validation grids, training seeds, the
table with its paired tests and the content each row reads) at toy sizes on a small synthetic world."""
import os
import subprocess
import sys

from conftest import REPO


def test_quick_mode_runs_every_step_and_prints_the_table(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench_new_items.py"), "--quick", "--dry-run",
                          "--runs", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "## Posters new items" in text
    for row in ("CuratorNet", "CDL", "VBPR", "TwoNets", "BPR-MF", "VisRank", "metadata k-NN", "visual k-NN",
                "Borda (features)", "popularity", "random"):
        assert f"| {row} |" in text, row
    assert "p vs CuratorNet" in text and "p vs CDL" in text and "Per seed" in text
    assert "| row | learning rate | λ | validation R@20 (new_items) | chosen |" in text  # the validation grids
    assert not os.path.exists(os.path.join(REPO, "docs", "benchmarks.md.tmp"))
