"""The one exception type for bad input data."""


class DataError(ValueError):
    """Bad input data. The message names the file, the line or key, and what was expected.

    The CLI prints the message alone (no traceback), so it must be complete by itself.
    """

    def __init__(self, path, reason, line=None, key=None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.key = key
        self.reason = reason
