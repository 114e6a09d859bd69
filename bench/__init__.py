"""Benchmarks: `make bench` (= `python -m bench [name ...]`) runs every module's `main()`.
Each prints its figures beside a baseline measured in the same run; none asserts a time."""
