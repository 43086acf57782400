"""osvos-pl: One-Shot Video Object Segmentation with PyTorch Lightning + Hydra.

The commands are the modules at this level: ``python -m osvos_pl`` (``__main__``: parent,
online, contour), ``predict``, ``evaluate``, ``report``, ``demo`` and ``download``. Everything
else lives in the layers below them (docs/architecture.md): ``runner`` (what the commands share),
``stages``, ``tasks``, then ``data``, ``model``, ``metrics``, ``snapping``, and ``utils``.
"""

import os

# albumentations checks PyPI for a newer version at import time; never call the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
