"""``python -m osvos_pl.download davis2016|davis2017 --root DIR`` — fetch and unpack DAVIS.

Resumable (HTTP Range on a ``.part`` file), with a progress bar, and verified against a SHA-256
when one is known (``--sha256`` or the registry below); the digest of every download is written
next to the archive so a later run can check it. The archive is unpacked so that ``DIR`` itself
is a DAVIS root (``DIR/JPEGImages/480p/...``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

from osvos_pl.runner.exits import input_error
from osvos_pl.utils.errors import DataError
from osvos_pl.utils.fetch import fetch, sha256_of

DATASETS = {
    # name: (url, sha256 or None). The DAVIS site publishes no checksums; pass --sha256 to pin one.
    "davis2016": ("https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip", None),
    "davis2017": (
        "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip", None,
    ),
}
def unpack(archive: Path, root: Path) -> Path:
    """Unzip into ``root``, lifting a single top folder (``DAVIS/``) so ``root`` is the DAVIS root."""
    staging = root.with_name(root.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive} is not a valid zip ({exc}) — delete it and download again") from exc
    top = [p for p in staging.iterdir() if not p.name.startswith("__MACOSX")]
    source = top[0] if len(top) == 1 and top[0].is_dir() else staging
    root.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = root / item.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        shutil.move(str(item), target)
    shutil.rmtree(staging, ignore_errors=True)
    if not (root / "JPEGImages").is_dir():
        raise DataError(f"{archive} unpacked into {root} but holds no JPEGImages/ — not a DAVIS archive?")
    return root


def download(name: str, root: Path, url: str | None = None, sha256: str | None = None) -> Path:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    default_url, known = DATASETS[name]
    url, expected = url or default_url, sha256 or known
    root = Path(root).expanduser()
    root.parent.mkdir(parents=True, exist_ok=True)
    archive = root.parent / f"{name}-{Path(url).name}"
    fetch(url, archive)
    digest = sha256_of(archive)
    if expected and digest != expected.lower():
        bad = archive.with_name(archive.name + ".corrupt")
        archive.replace(bad)
        raise DataError(f"checksum mismatch for {archive}: sha256 {digest}, expected {expected} — "
                        f"moved it to {bad}; run again to re-download")
    archive.with_name(archive.name + ".sha256").write_text(f"{digest}  {archive.name}\n")
    return unpack(archive, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m osvos_pl.download", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--root", required=True, type=Path, help="DAVIS root to create")
    parser.add_argument("--url", help="override the archive URL (a mirror, or file:// for a local copy)")
    parser.add_argument("--sha256", help="expected SHA-256 of the archive")
    args = parser.parse_args(argv)
    try:
        root = download(args.dataset, args.root, args.url, args.sha256)
    except DataError as exc:
        return input_error(exc)
    print(f"DAVIS root ready: {root}  (use data.root={root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
