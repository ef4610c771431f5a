"""Import a raw real data set into the tfvrec data set format.

    python tools/import_dataset.py flickr_fs --raw ../shared/data/flickr_fs --out data/flickr_fs
    python tools/import_dataset.py ugallery --raw ../shared/data/ugallery --out data/ugallery --option holdout=none

Same arguments as ``tfvrec data import``. Bad raw data or options print one message (no traceback), exit 2.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging  # noqa: E402

from tfvrec.data.importers import add_import_arguments, run_import  # noqa: E402


def main(argv=None):
    parser = add_import_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    logging.set_verbosity(logging.INFO)
    try:
        run_import(args)
    except ValueError as e:  # DataError is a ValueError: the message is complete by itself
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
