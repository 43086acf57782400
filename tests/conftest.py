"""Shared fixtures: the real DAVIS sample and VGG16 weights from ../shared.

Outside this workplace ../shared may be absent: tests that need it skip with a reason,
except under CI (CI=true), where a missing ../shared is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

# Hypothesis (tests/test_properties_*.py): "ci" is fixed and bounded — the same 60 examples per
# test on every run (about 25 s for all of them), no example database, no wall-clock limits that
# a busy machine would trip. HYPOTHESIS_PROFILE=thorough searches wider: fresh random examples,
# 800 per test (a few minutes).
settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", max_examples=800, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OSVOS_SHARED", REPO.parent / "shared"))


def _shared_path(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        msg = f"{path} is missing (the shared sample data / weights beside the checkout)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{msg}; under CI it must be present")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def davis_sample() -> Path:
    """Root of the real DAVIS 2016 sample (blackswan, car-shadow), DAVIS layout."""
    return _shared_path("data/davis-sample")


@pytest.fixture(scope="session")
def vgg_weights() -> Path:
    """Real ImageNet VGG16 conv weights in torchvision key format."""
    return _shared_path("weights/vgg16_imagenet_features_torchvision.pth")


@pytest.fixture(scope="session")
def davis_train_240p() -> Path:
    """Root of the official DAVIS 2016 train split at 427x240 (30 sequences)."""
    return _shared_path("data/davis2016-train-240p")


@pytest.fixture(scope="session")
def davis2017_sample() -> Path:
    """Root of the real DAVIS 2017 sample: schoolgirls, 80 frames, 7 objects, 432x240 (240p)."""
    return _shared_path("data/davis2017-sample")
