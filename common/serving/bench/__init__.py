"""Benchmarks of the serving core itself (not tests: they time things, on whatever machine runs them).

Each module is runnable (`python -m common.serving.bench.<name> --help`) and writes one JSON file of
measurements with the hardware they ran on; gpu_check calls the same functions on a GPU.
"""
