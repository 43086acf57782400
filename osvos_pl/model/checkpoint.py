"""Reading OSVOS checkpoints safely: tensors and plain values only, never arbitrary pickles.

``torch.load(weights_only=True)`` refuses any object outside tensors, containers and
primitives, so a shared checkpoint cannot run code on the machine that opens it. What a
checkpoint legitimately holds beyond tensors (hyper-parameters, the loop state Lightning
writes) is stored as plain types.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from osvos_pl.errors import ConfigError
from osvos_pl.utils.atomic import atomic_path

UNSAFE_HINT = (
    "it needs arbitrary unpickling, which can run code, so it is refused. If you trust its "
    "author, convert it once in a separate Python session: "
    "ckpt = torch.load(PATH, weights_only=False); "
    "torch.save({'state_dict': ckpt.get('state_dict', ckpt)}, 'converted.ckpt') — then pass "
    "the converted file"
)


class UnsafeCheckpointError(ConfigError):
    """A checkpoint that cannot be read without arbitrary unpickling."""


def safe_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that say what to do."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path} — check parent_ckpt / contour_ckpt")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsafeCheckpointError(f"cannot load {path} safely ({reason}): {UNSAFE_HINT}") from None
    except Exception as exc:  # noqa: BLE001 — any other failure means an unreadable file
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc


def load_checkpoint_weights(net: torch.nn.Module, path: str | Path) -> str | None:
    """Load an OSVOS checkpoint (Lightning ``.ckpt`` or a plain state dict) into ``net``.

    Returns the input normalisation recorded in the checkpoint (None if it has none), which must
    win over ``data.normalization=auto``: the network was trained on that input. The parent the
    authors released with their PyTorch port (``osvos-pytorch``) is fetched and converted.
    """
    from osvos_pl.model.convert import is_authors_parent, load_parent

    if is_authors_parent(path):
        return load_parent(net, path)
    ckpt = safe_load(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict — is it an osvos-pl checkpoint?")
    state = {k.removeprefix("net."): v for k, v in state.items() if not k.startswith("metric")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if "upsample" not in k and "kernel" not in k]
    if missing or unexpected:
        raise ConfigError(
            f"{path} does not match the OSVOS network: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]} — was it trained with a different model config?"
        )
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    return hparams.get("normalization")


def export_weights(net: torch.nn.Module, hyper_parameters: Mapping[str, Any],
                   path: str | Path) -> Path:
    """Write the weights-only checkpoint a run hands on (``parent.ckpt``, ``contour.ckpt``).

    It holds what ``parent_ckpt=`` / ``contour_ckpt=`` need — ``state_dict`` (keys ``net.*``,
    as in a Lightning checkpoint of the task) and ``hyper_parameters`` (the input
    ``normalization`` among them) — about 60 MB for OSVOS, against 180 MB for a resumable
    checkpoint with Adam's moments and the loop state (``checkpoints/last.ckpt``). Plain types
    only, so it loads with ``weights_only=True``; written to a temporary name and renamed.
    """
    state = {f"net.{key}": value.detach().cpu() for key, value in net.state_dict().items()}
    content = {"state_dict": state, "hyper_parameters": _plain(dict(hyper_parameters))}
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return Path(path)


def _plain(value: Any) -> Any:
    """Mappings (Lightning's ``AttributeDict``, OmegaConf nodes) as dicts, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
