"""Test suite; `tests.common` holds the shared fixture models, `tests.bench` the benchmarks."""
