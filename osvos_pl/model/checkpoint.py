"""Reading OSVOS checkpoints safely: tensors and plain values only, never arbitrary pickles.

``torch.load(weights_only=True)`` refuses any object outside tensors, containers and
primitives, so a shared checkpoint cannot run code on the machine that opens it. What a
checkpoint legitimately holds beyond tensors (hyper-parameters, the loop state Lightning
writes, what the network was trained on: ``trained_on``) is stored as plain types.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from osvos_pl.utils.atomic import atomic_path
from osvos_pl.utils.errors import ConfigError

UNSAFE_HINT = (
    "it needs arbitrary unpickling, which can run code, so it is refused. If you trust its "
    "author, convert it once in a separate Python session: "
    "ckpt = torch.load(PATH, weights_only=False); "
    "torch.save({'state_dict': ckpt.get('state_dict', ckpt)}, 'converted.ckpt') — then pass "
    "the converted file"
)


#: Leading bytes of files people pass by mistake, and what each is (a torch checkpoint starts
#: with ``PK`` (zip) or a pickle's ``\x80``).
_NOT_CHECKPOINTS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
                    (b"GIF8", "a GIF image"), (b"\x1f\x8b", "a gzip archive"),
                    (b"%PDF", "a PDF document"), (b"\x1aE\xdf\xa3", "a WebM/MKV video"))


class UnsafeCheckpointError(ConfigError):
    """A checkpoint that cannot be read without arbitrary unpickling."""


def _what_it_is(path: Path) -> str | None:
    """What ``path`` is when it is plainly no PyTorch checkpoint ("a PNG image"), else None."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return None
    for magic, what in _NOT_CHECKPOINTS:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "an MP4/MOV video"
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a binary file of another kind"


def check_checkpoint_file(path: str | Path, key: str = "parent_ckpt / contour_ckpt") -> Path:
    """``path`` if it exists and could be a PyTorch checkpoint (its first bytes), else a
    ConfigError naming ``key`` and what the file is instead ("a PNG image"). A shipped parent's
    name (``davis2016``) is its file, checked against its SHA-256."""
    from osvos_pl.model.shipped import is_shipped, shipped_path

    if is_shipped(path):
        return shipped_path(str(path))
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path} — check {key}")
    what = _what_it_is(path)
    if what is not None:
        raise ConfigError(
            f"{key}={path} is {what}, not a checkpoint — pass the .ckpt a training run wrote "
            "(<run>/parent.ckpt, <run>/contour.ckpt, checkpoints/last.ckpt), "
            "parent_ckpt=davis2016 for the shipped parent, or parent_ckpt=osvos-pytorch for the "
            "authors' parent")
    return path


def safe_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that say what to do."""
    path = check_checkpoint_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnsafeCheckpointError(f"cannot load {path} safely ({reason}): {UNSAFE_HINT}") from None
    except Exception as exc:  # noqa: BLE001 — any other failure means an unreadable file
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc


@dataclass(frozen=True)
class LoadedCheckpoint:
    """What a loaded checkpoint says about its network: the input normalisation it was trained
    on (None if unrecorded) and ``trained_on`` (data, sequences, scale, backbone; None for
    checkpoints written before it was recorded)."""

    normalization: str | None
    trained_on: Mapping[str, Any] | None


#: ``trained_on`` of the parent the authors released with their PyTorch port.
AUTHORS_PARENT = {"data": "davis", "root": "DAVIS 2016 train (the authors' osvos-pytorch parent)",
                  "backbone": "ImageNet VGG16", "random_backbone": False}


def load_checkpoint(net: torch.nn.Module, path: str | Path,
                    cache_dir: str | Path | None = None) -> LoadedCheckpoint:
    """Load an OSVOS checkpoint (Lightning ``.ckpt`` or a plain state dict) into ``net``.

    The normalisation it records must win over ``data.normalization=auto``: the network was
    trained on that input. The parent the authors released with their PyTorch port
    (``osvos-pytorch``) is fetched into ``<cache_dir>/weights`` (``paths.cache_dir``; None
    refuses the download) and converted.
    """
    from osvos_pl.model.authors import is_authors_parent, load_authors_parent

    if is_authors_parent(path):
        return LoadedCheckpoint(load_authors_parent(net, path, cache_dir), AUTHORS_PARENT)
    ckpt = safe_load(path)  # a shipped parent's name: its checked file (check_checkpoint_file)
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
    return LoadedCheckpoint(hparams.get("normalization"), ckpt.get("trained_on"))


def load_checkpoint_weights(net: torch.nn.Module, path: str | Path,
                            cache_dir: str | Path | None = None) -> str | None:
    """:func:`load_checkpoint`, returning only the recorded input normalisation."""
    return load_checkpoint(net, path, cache_dir).normalization


def read_trained_on(path: str | Path) -> Mapping[str, Any] | None:
    """A checkpoint's ``trained_on`` without reading its tensors (memory-mapped), for choosing
    among parents; a shipped parent's name reads its checked file. None where unrecorded."""
    path = check_checkpoint_file(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 — unreadable or unsafe: the loader says why when it runs
        return None
    return ckpt.get("trained_on") if isinstance(ckpt, dict) else None


def describe_training(trained_on: Mapping[str, Any] | None) -> str:
    """``trained_on`` in words, for the run log."""
    if not trained_on:
        return "it does not record what it was trained on"
    data = ("the generated stand-in data" if trained_on.get("data") == "generated"
            else str(trained_on.get("root", "real data")))
    count = len(trained_on.get("sequences") or [])
    details = [f"{count} sequences" if count else None,
               f"scale {trained_on['scale']:.3g}" if trained_on.get("scale") is not None else None,
               f"{trained_on['updates']} updates" if trained_on.get("updates") else None]
    details = ", ".join(d for d in details if d)
    return (f"trained on {data}{f' ({details})' if details else ''} from "
            f"{trained_on.get('backbone', 'an unrecorded backbone')}")


def unsuited_for_real_frames(trained_on: Mapping[str, Any] | None) -> str | None:
    """Why a network with this ``trained_on`` cannot segment real video, or None (also when it
    is unrecorded): trained on the generated data, or from a random backbone."""
    if not trained_on:
        return None
    reasons = [why for why, bad in (
        ("on the generated stand-in data (striped shapes over grey clutter)",
         trained_on.get("data") == "generated"),
        ("from a RANDOM backbone (no ImageNet features)", trained_on.get("random_backbone")),
    ) if bad]
    return " and ".join(reasons) or None


def export_weights(net: torch.nn.Module, hyper_parameters: Mapping[str, Any],
                   path: str | Path, trained_on: Mapping[str, Any] | None = None) -> Path:
    """Write the weights-only checkpoint a run hands on (``parent.ckpt``, ``contour.ckpt``).

    It holds what ``parent_ckpt=`` / ``contour_ckpt=`` need — ``state_dict`` (keys ``net.*``,
    as in a Lightning checkpoint of the task) and ``hyper_parameters`` (the input
    ``normalization`` among them), and ``trained_on`` (what the network learnt from, so that a
    later run can say when it does not fit its data) — about 60 MB for OSVOS, against 180 MB for a resumable
    checkpoint with Adam's moments and the loop state (``checkpoints/last.ckpt``). Plain types
    only, so it loads with ``weights_only=True``; written to a temporary name and renamed.
    """
    state = {f"net.{key}": value.detach().cpu() for key, value in net.state_dict().items()}
    content = {"state_dict": state, "hyper_parameters": _plain(dict(hyper_parameters)),
               "trained_on": _plain(dict(trained_on or {}))}
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
