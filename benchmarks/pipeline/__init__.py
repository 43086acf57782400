"""The pieces of ``benchmarks/bench_pipeline.py``: variants, timing, peak, measurements, report."""
