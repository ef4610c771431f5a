"""``tfvrec report``: the page of a tiny run holds the users, their history and top-K images,
hits outlined, HASC's explanations and CuratorNet's nearest history items, and renders in a
real browser (headless Chromium) without console errors."""
import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfvrec.inspect.report import build_report, svg_curves, write_report
from tfvrec import config as config_lib
from tfvrec.evaluation import evaluator

from conftest import REPO


def _heldout(run_dir):
    config = config_lib.read_params(run_dir)
    from tfvrec.data.resolve import resolve_dataset
    dataset = resolve_dataset(config.data)
    return dataset, evaluator.heldout_by_user(dataset.split("test"))


def test_hasc_report_shows_history_recommendations_hits_and_explanations(hasc_run):
    run_dir, _ = hasc_run
    page, summary = build_report(run_dir, count=3, k=5, history=4)
    dataset, heldout = _heldout(run_dir)
    users = re.findall(r"<h2>User (\S+)</h2>", page)
    assert len(users) == 3 and all(dataset.user_index([u])[0] in heldout for u in users)
    seen = dataset.train_items_by_user()
    expected_images = sum(min(4, len(seen[dataset.user_index([u])[0]])) + 5 for u in users)
    assert summary["images"] == expected_images == page.count("<img ")
    assert page.count("<div class='bar'") == 3 * 5 * 3  # γ over three aspects for every recommendation
    assert page.count("<svg") == 2 and "HR@K" in page and "R@K" in page
    hits = page.count('<figure class="hit">')
    recommended = re.findall(r"<div class='row recommended'>(.*?)</div>\s*(?:<h2>|</body>)", page, re.S)
    assert hits == sum(chunk.count("· hit") for chunk in recommended)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # no CDN


def test_curatornet_report_names_the_nearest_history_item(curatornet_run):
    run_dir, _ = curatornet_run
    page, summary = build_report(run_dir, users=None, count=2, k=4)
    assert page.count("nearest in history:") == 2 * 4
    assert summary["has_images"]


def test_report_table_is_the_runs_table_with_its_interval_and_paired_tests(curatornet_run):
    """The page's results table has the run's columns in the run's order (eval.table_metrics × eval.ks: the
    first decides), that metric's 95% interval and each row's p against the model, from metrics.json."""
    from tfvrec.evaluation.significance import format_p
    run_dir, _ = curatornet_run
    page, _ = build_report(run_dir, count=1, k=4)
    table = re.search(r"<table>(.*?)</table>", page, re.S).group(1)
    header = re.findall(r"<th>(.*?)</th>", table)
    assert header == ["scorer", "protocol", "R@20", "R@20 95% CI", "R@100", "P@20", "P@100", "nDCG@20", "nDCG@100",
                      "AUC", "p (R@20, paired t)"]
    rows = [re.findall(r"<td>(.*?)</td>", "<td>" + row) for row in re.findall(r"<tr><td>(.*?)</tr>", table, re.S)]
    stored = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert [row[0] for row in rows] == stored["rows"] == ["curatornet", "popularity", "random"]
    for row, result in zip(rows, stored["results"]):
        assert row[2] == f"{result['metrics']['recall@20']:.4f}" and row[9] == f"{result['metrics']['auc']:.4f}"
        low, high = result["ci95"]["recall@20"]
        assert row[3] == f"[{low:.4f}, {high:.4f}]"
        test = result.get("paired_test", {}).get("recall@20")
        assert row[-1] == ("(reference)" if test is None else html.escape(format_p(test["p_value"])))
    assert "p: two-sided paired t-test" in page


def test_report_without_images_falls_back_to_ids(tmp_path):
    from planted import planted_dataset
    from tfvrec.training import trainer
    data = planted_dataset(str(tmp_path / "data"))
    config = config_lib.load_config(None, [
        "data.source=directory", f"data.path={data}", f"runtime.model_dir={tmp_path / 'run'}",
        "runtime.distribution_strategy=default", "trainer.epochs=1", "trainer.verbose=0", "eval.repeats=1",
        "eval.protocols=[full]", "eval.split=validation"])
    trainer.train(config)
    page, summary = build_report(str(tmp_path / "run"), count=2, k=3)
    assert not summary["has_images"] and summary["images"] == 0 and "<img" not in page
    assert "has no images" in page and page.count("class='tile-text'") + page.count('class="tile-text"') > 0


def test_svg_curve_is_drawn_from_the_values():
    svg = svg_curves({"a": list(np.linspace(0.1, 0.5, 20)), "b": [0.2] * 20}, "R@K")
    assert svg.count("<polyline") == 2 and svg.startswith("<svg")
    # b is flat: all its points share one y
    points = re.findall(r'points="([^"]+)"', svg)[1].split()
    assert len({p.split(",")[1] for p in points}) == 1


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(hasc_run, tmp_path):
    browser, driver_path = _chromium(), shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("headless Chromium / chromedriver not installed (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    run_dir, _ = hasc_run
    out = str(tmp_path / "report.html")
    summary = write_report(run_dir, out, count=3, k=5)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_window_size(1400, 1000)
        driver.get("file://" + out)
        loaded = driver.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        total = driver.execute_script("return document.images.length")
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        svgs = driver.execute_script("return document.querySelectorAll('svg polyline').length")
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert errors == []
    assert total == loaded == summary["images"] > 0
    # HR@K and R@K, each with a curve for every row of the run's table (the model and each of eval.baselines).
    rows = json.load(open(os.path.join(run_dir, "metrics.json")))["rows"]
    assert svgs == 2 * len(set(rows)) == 2 * 2
    assert os.path.getsize(tmp_path / "report.png") > 10000


def test_report_command_line(hasc_run, tmp_path):
    run_dir, _ = hasc_run
    out = str(tmp_path / "r.html")
    done = subprocess.run([sys.executable, "-m", "tfvrec", "report", "--run", run_dir, "--users", "2", "-k", "3",
                           "--out", out], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Wrote" in done.stdout and os.path.exists(out)
    bad = subprocess.run([sys.executable, "-m", "tfvrec", "report", "--run", run_dir, "--user", "nobody",
                          "--out", out], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "nobody" in bad.stderr and "Traceback" not in bad.stderr
    printed = subprocess.run([sys.executable, "-m", "tfvrec", "tensorboard", "--run", run_dir], capture_output=True,
                             text=True, cwd=REPO)
    assert printed.returncode == 0 and printed.stdout.strip() == f"tensorboard --logdir {run_dir}/tensorboard"
