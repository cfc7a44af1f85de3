"""Load tests and benchmarks: bounded scripts, results recorded in docs/BENCHMARKS.md."""
