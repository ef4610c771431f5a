"""Progress bars for the long steps (evaluation, clustering, sampling set-up, export, import, synthetic
generation): tqdm on stderr when it is a terminal, silent in logs and CI.

``TFVREC_PROGRESS=1`` shows them everywhere, ``TFVREC_PROGRESS=0`` nowhere. TensorFlow-free.
"""
import os
import sys


def enabled():
    setting = os.environ.get("TFVREC_PROGRESS", "")
    if setting in ("0", "1"):
        return setting == "1"
    return sys.stderr.isatty()


def bar(iterable=None, total=None, desc="", unit="it", leave=False):
    """``tqdm(iterable, ...)`` when progress is shown, else the iterable (or a no-op bar)."""
    if enabled():
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True)
    return _Silent(iterable)


class _Silent:
    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n=1):
        pass

    def set_description_str(self, text):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
