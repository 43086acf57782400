"""Loggers: W&B without the deprecated ``anonymous`` argument, and a per-sequence view of a run's
loggers for the online stage's fine-tuning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytorch_lightning.loggers import Logger
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger as configured in ``conf/logger/wandb.yaml``.

    Lightning always passes ``anonymous`` to ``wandb.init`` (``None`` by default), and wandb
    >= 0.19 warns on every run that the setting has no effect; it is not passed here.
    ``quiet`` (default) keeps W&B's own banner and end-of-run history out of the console (and,
    for an offline run, its where-the-files-are lines): the runner's summary names the run
    folder and how to sync it. An online run still prints its URL.
    """

    def __init__(self, *args: Any, quiet: bool = True, **kwargs: Any):
        if quiet:
            offline = kwargs.get("offline") or kwargs.get("mode") == "offline"
            kwargs.setdefault("settings", {"quiet": True, "silent": bool(offline)})
        super().__init__(*args, **kwargs)
        self._wandb_init.pop("anonymous", None)


class PrefixedLogger(Logger):
    """One fine-tuning's view of a run's logger: metrics go to ``inner`` as ``<prefix>/<name>``.

    The online stage fine-tunes one copy of the parent per sequence (and object), each with its
    own Trainer whose step restarts at 0; under a per-sequence prefix every fine-tuning gets its
    own loss curve in the run's W&B panel. Hyper-parameters and the end of the run belong to the
    runner, so this view neither logs the former nor finalises ``inner``.
    """

    #: Lightning's epoch counter, and what fine-tuning (fused loss alone) logs twice or not at all.
    DROPPED = ("epoch", "train/fuse_loss", "train/side_weight")

    def __init__(self, inner: Logger, prefix: str):
        super().__init__()
        self.inner, self.prefix = inner, prefix.rstrip("/")

    @property
    def name(self) -> str | None:
        return self.inner.name

    @property
    def version(self) -> int | str | None:
        return self.inner.version

    @property
    def save_dir(self) -> str | None:
        return self.inner.save_dir

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The run's config is logged once, by the runner."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        renamed = {f"{self.prefix}/{key.removeprefix('train/')}": value
                   for key, value in metrics.items() if key not in self.DROPPED}
        if renamed:
            self.inner.log_metrics(renamed, step)

    def finalize(self, status: str) -> None:
        """The runner closes the run's loggers, after every sequence."""
