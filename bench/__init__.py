"""Benchmarks: `make bench` (= `python -m bench`) runs every `bench/<name>.py` module's
`main()`; each prints its figures beside a baseline measured in the same run."""
