"""The one exception type for bad input data (`tfvrec.errors.DataError`, named here for the data layer)."""
from tfvrec.errors import DataError

__all__ = ["DataError"]
