"""What every ``--runner beam`` command shares: the optional Apache Beam import and the runner name.

Beam is an optional extra (``pip install 'tfvrec[beam]'``); this module does not import it, so the
CLI stays importable (and ``tfvrec --help`` fast) without it.
"""
from tfvrec.data.errors import DataError


def import_beam(instead):
    """``apache_beam``, or one clear error naming ``--runner`` and what to do ``instead`` without it."""
    try:
        import apache_beam as beam
    except ImportError:
        raise DataError("--runner", f"Apache Beam is not installed; pip install 'tfvrec[beam]' ({instead})") from None
    return beam


def runner_name(runner):
    """A ``--runner`` value as Beam's runner name: ``beam`` is the DirectRunner, others pass through."""
    return "DirectRunner" if runner == "beam" else runner
