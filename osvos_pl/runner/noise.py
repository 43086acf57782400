"""Library output that says nothing to a user of this project, switched off where it is made.

Each item is handled at its source, narrowly, rather than by a blanket warnings filter:

- Lightning's "💡 Tip: ... litlogger" line (printed by every Trainer that has no LitLogger) and
  its per-trainer device lines ("GPU available", "TPU available", "Using bfloat16 Automatic Mixed
  Precision", "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES", "`Trainer.fit` stopped: `max_steps=N`
  reached"), which the online stage would repeat for every object it fine-tunes: all dropped.
  The runner's plan line already names the device and precision, and the run's end its updates.
- Lightning 2.6's ``_tree_flatten`` builds ``torch.utils._pytree.LeafSpec()``, which torch
  >= 2.9 deprecates (a FutureWarning on every ``fit``); it gets torch's replacement,
  ``treespec_leaf()``, which returns the same leaf spec.
- Lightning's "The number of training batches (N) is smaller than the logging interval": its
  "epoch" is one pass over the views of a frame or a small training set, not a unit of ours;
  metrics are logged every ``log_every_n_steps`` updates all the same.
- The W&B ``anonymous`` warning, the ``weights_only`` note and "validation_step but no
  val_dataloader" are avoided by the callers (``osvos_pl.tasks.loggers.WandbLogger``,
  ``osvos_pl.model.checkpoint.export_weights``, ``OneShotSegmenter``).
"""

from __future__ import annotations

import logging
import warnings

#: Lightning info lines a user did not ask for: its tip, and per-trainer device and stop lines
#: (the plan line says device and precision; the summary says how many updates ran).
DROPPED_PREFIXES = ("💡 Tip", "GPU available", "TPU available", "HPU available", "Using bfloat16",
                    "Using 16bit", "`Trainer.fit` stopped", "LOCAL_RANK:")


class LightningInfoFilter(logging.Filter):
    """Drops Lightning's litlogger tip and its per-trainer device lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(DROPPED_PREFIXES)


def quiet_lightning_info() -> None:
    """Install :class:`LightningInfoFilter` on Lightning's rank-zero logger (once)."""
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, LightningInfoFilter) for f in logger.filters):
        logger.addFilter(LightningInfoFilter())


def leaf_spec_without_deprecation() -> None:
    """Give Lightning's pytree helper torch's non-deprecated leaf-spec constructor."""
    import torch.utils._pytree as torch_pytree
    from pytorch_lightning.utilities import _pytree as pl_pytree

    if hasattr(torch_pytree, "treespec_leaf") and getattr(pl_pytree, "LeafSpec", None) is not None:
        pl_pytree.LeafSpec = torch_pytree.treespec_leaf


def short_epoch_warning_off() -> None:
    """Ignore Lightning's warning that an "epoch" has fewer batches than the logging interval."""
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller "
                            "than the logging interval")


def quiet_libraries() -> None:
    """Everything above; idempotent, called by the runner before any trainer is built."""
    quiet_lightning_info()
    leaf_spec_without_deprecation()
    short_epoch_warning_off()
