"""What the papers share: run machinery, result store, logging, energy measurement, hardware and serving.

It never imports papers/, and only common.config imports hydra at import time, so the GPU nodes run
the rest with their own python (tests/test_layout.py checks both).
"""
