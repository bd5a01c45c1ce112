"""Benchmarks of booking-worker, each figure measured with its baseline in the same run.

    python -m bench [--smoke] [--only NAME[,NAME]] [--json FILE] [--large]

See bench/__main__.py for the figures and README.md ("Benchmarks") for how to read them.
"""
