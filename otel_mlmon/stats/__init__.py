"""Batch summaries, baseline-aligned binning and drift statistics.

Everything here is pure numpy over arrays and counts, with no OpenTelemetry,
so it can be tested and benchmarked on its own.
"""
