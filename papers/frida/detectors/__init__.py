"""FRIDA's detectors: membership inference with canaries (membership.py), property inference
from the last layer (property.py), majority vote (vote.py); `suite.DetectorSuite` runs them with the
baselines (papers/frida/baselines.py) on every round."""
