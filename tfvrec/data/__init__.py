"""Data sets: the on-disk format, importers for real data, and the synthetic world."""
