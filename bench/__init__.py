"""Kring's benchmark: ``make bench`` (``python -m bench``). Prints figures with ratios to raw
baselines measured in the same run; never fails on speed."""
