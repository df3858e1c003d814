"""Benchmarks of the serving core itself (not tests: they time things, on whatever machine runs them).

Each module is a command (`python -m common.serving.bench.<name> [key=value ...]`, its settings in
conf/common/serving/bench/<name>.yaml) that writes one JSON file of measurements with the hardware they
ran on under ${paths.results_dir}/serving/; gpu_check calls the same functions on a GPU.
"""
