"""Benchmarks: `make bench` (`python -m bench`) runs every `bench/<name>.py` module's `main()`.
Each prints its figures beside a baseline measured in the same run."""
