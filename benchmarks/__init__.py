"""Benchmarks of facecodec against classical codecs; see benchmarks/README.md.

The scripts run as ``python benchmarks/NAME.py`` from the repository root (each puts
the root on sys.path so ``benchmarks`` imports as a package) or as ``python -m benchmarks.NAME``.
"""
