"""osvos-pl: One-Shot Video Object Segmentation with PyTorch Lightning + Hydra."""

import os

# albumentations checks PyPI for a newer version at import time; never call the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
