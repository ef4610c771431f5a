"""The README's screenshots, taken with headless Chromium from real runs.

    make demo    # trains runs/demo (configs/demo.yaml)
    python tools/screenshots.py --report-run runs/demo --tensorboard-run runs/demo

writes ``docs/img/report_demo.png`` (``tfvrec report`` of the run, named ``report_<run folder>``)
and ``docs/img/tensorboard_projector.png`` (TensorBoard's Embedding Projector of the run's item
vectors, or ``tensorboard_hparams.png`` with ``--view hparams``). Needs Debian's ``chromium`` and
``chromium-driver``.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _driver(width, height):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-gl=angle",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_window_size(width, height)
    return driver


def report_screenshot(run_dir, out, users=3, k=8):
    from tfvrec.inspect.report import write_report
    page = os.path.join(tempfile.mkdtemp(), "report.html")
    summary = write_report(run_dir, page, count=users, k=k)
    driver = _driver(1400, 1500)
    try:
        driver.get("file://" + page)
        time.sleep(1)
        driver.save_screenshot(out)
    finally:
        driver.quit()
    print(f"wrote {out} ({summary})")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tensorboard_screenshot(run_dir, out, view="projector", wait=40):
    port = _free_port()
    executable = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    server = subprocess.Popen([executable, "--logdir", os.path.join(run_dir, "tensorboard"), "--port", str(port),
                               "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)
        driver = _driver(1600, 1000)
        try:
            driver.get(f"http://127.0.0.1:{port}/#{view}")
            time.sleep(wait)  # the projector loads the vectors and the sprite, then runs PCA
            driver.save_screenshot(out)
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait()
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report-run")
    parser.add_argument("--tensorboard-run")
    parser.add_argument("--view", default="projector", choices=["projector", "hparams"])
    parser.add_argument("--out-dir", default=os.path.join(REPO, "docs", "img"))
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    if args.report_run:
        name = os.path.basename(os.path.abspath(args.report_run)).replace("report_", "")
        report_screenshot(args.report_run, os.path.join(args.out_dir, f"report_{name}.png"))
    if args.tensorboard_run:
        tensorboard_screenshot(args.tensorboard_run, os.path.join(args.out_dir, f"tensorboard_{args.view}.png"),
                               args.view)


if __name__ == "__main__":
    main()
