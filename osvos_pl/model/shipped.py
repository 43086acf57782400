"""Parents shipped inside the package, selected by name (``parent_ckpt=davis2016``).

OSVOS without a parent is its weakest form, and on a machine without network it is worse: the
ImageNet backbone cannot be fetched, so ``-PN`` fine-tunes a random one. The package therefore
carries a parent this project trained (``osvos_pl/weights/``, float16 to halve the wheel; the
state dict loads into the float32 network). Each file is checked against the SHA-256 recorded
here before it is read: a damaged copy (a truncated download, a disk error, a file swapped by
hand) is refused with what to do, never loaded into a network that would segment garbage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from osvos_pl.utils.errors import ConfigError

#: Where the shipped files live, inside the installed package (a checkout or a wheel).
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


@dataclass(frozen=True)
class ShippedParent:
    """A parent checkpoint in ``WEIGHTS_DIR``: the name that selects it, its file, its SHA-256,
    and what it is, in words for the run log and the demo."""

    name: str
    file: str
    sha256: str
    about: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


SHIPPED: dict[str, ShippedParent] = {p.name: p for p in (
    ShippedParent(
        "davis2016", "osvos_parent_davis2016_train.ckpt",
        "44aa5dfdeaee7ccce7f1b4ad10cdbdab21e541106ddf5d71eeef66ae1ec52c71",
        "the shipped OSVOS parent, trained on DAVIS 2016 train (25 sequences) from ImageNet VGG16"),
)}

#: The parent ``predict`` and the demo use when none is named (``conf/predict.yaml``).
DEFAULT = "davis2016"


def is_shipped(source: object) -> bool:
    """Whether ``parent_ckpt`` names a shipped parent (``davis2016``), not a file."""
    return isinstance(source, str) and source in SHIPPED


def shipped_path(name: str) -> Path:
    """The shipped file named ``name``, after checking it is there and has its SHA-256; a
    ConfigError saying which file is wrong and how to get a good copy otherwise."""
    from osvos_pl.utils.fetch import sha256_of

    parent = SHIPPED[name]
    fix = ("reinstall osvos-pl (pip install --force-reinstall osvos-pl, or git checkout -- "
           f"osvos_pl/weights/{parent.file} in a checkout), or pass parent_ckpt=/path/to/a.ckpt")
    if not parent.path.is_file():
        raise ConfigError(f"parent_ckpt={name}: the shipped file {parent.path} is missing — {fix}")
    digest = sha256_of(parent.path)
    if digest != parent.sha256:
        raise ConfigError(f"parent_ckpt={name}: {parent.path} has SHA-256 {digest[:16]}…, not the "
                          f"shipped {parent.sha256[:16]}… (a damaged or replaced copy) — {fix}")
    return parent.path
