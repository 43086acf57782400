"""``python -m osvos_pl.evaluate --pred DIR --gt DAVIS_ROOT`` — official DAVIS J/F of any predictions.

GT is a DAVIS root (``Annotations/<resolution>/<seq>/NNNNN.png``) or a folder of ``<seq>/``
mask folders; predictions are ``<pred>/<seq>/NNNNN.png``, looked up by the GT's frame names
(frames 0 and N-1 are not scored and may be missing). Prints the global table and one row per
object (``<seq>`` or, DAVIS 2017, ``<seq>_<k>``) with its J and F mean, recall and decay;
``--out`` writes a run record (JSON, atomically), ``--csv`` the two official CSV files.
A DAVIS 2017 root (its splits in ``ImageSets/2017``) is scored with the 2017 semantics
(``--multi-object``: ids 1..K of frame 0, void 255 as background) without being asked
(``--single-object`` scores all its objects as one).
``evaluate_folders`` is the same as a library call.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from osvos_pl.data.io import read_mask
from osvos_pl.metrics import (
    GLOBAL_KEYS,
    STAT_KEYS,
    evaluate_sequence,
    evaluate_sequence_rows,
    summarize,
)
from osvos_pl.metrics.bitplanes import pack_rows
from osvos_pl.runner.exits import input_error
from osvos_pl.stages.records import now_iso
from osvos_pl.utils.atomic import atomic_path, atomic_write_json
from osvos_pl.utils.errors import DataError, OSVOSError

READ_THREADS = min(8, os.cpu_count() or 1)  # PNG decoding releases the GIL
# Sequences decoded ahead of the one being scored: packed single-object frames are small (50 kB
# at 480p); multi-object label maps are 8x larger, so only one sequence runs ahead of them.
PREFETCH = {"packed": 2, "labels": 1}


def gt_folder(gt: str | os.PathLike, resolution: str = "480p") -> Path:
    """The folder holding ``<seq>/`` mask folders: ``gt/Annotations/<resolution>`` or ``gt``."""
    gt = Path(gt)
    if not gt.is_dir():
        raise DataError(f"--gt {gt} is not a folder — pass a DAVIS root or a folder of <seq>/ mask folders")
    annotations = gt / "Annotations"
    if annotations.is_dir():
        folder = annotations / resolution
        if not folder.is_dir():
            found = sorted(p.name for p in annotations.iterdir() if p.is_dir())
            raise DataError(f"{folder} does not exist (found resolutions {found}) — pick one with --resolution")
        return folder
    return gt


def is_davis2017_root(gt: str | os.PathLike) -> bool:
    """Whether ``gt`` is a DAVIS 2017 root: its palette annotations come with ``ImageSets/2017``
    (a DAVIS 2016 root has ``ImageSets/480p``), so its masks hold object ids, not one object."""
    return (Path(gt) / "ImageSets" / "2017").is_dir()


def _mask_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.png")))


def select_sequences(gt_dir: Path, pred_dir: Path, sequences: Sequence[str] | None) -> list[str]:
    """Sequences to score: the ones asked for (each must exist on both sides), else every GT
    sequence that has a prediction folder (a note on stderr lists GT sequences left out)."""
    if not pred_dir.is_dir():
        raise DataError(f"--pred {pred_dir} is not a folder of <seq>/NNNNN.png predictions")
    available = _mask_folders(gt_dir)
    if sequences:
        for name in sequences:
            if name not in available:
                raise DataError(f"sequence {name!r}: no GT masks in {gt_dir / name} — check the name and --gt")
            if not (pred_dir / name).is_dir():
                raise DataError(f"sequence {name!r}: no prediction folder {pred_dir / name}")
        return list(sequences)
    chosen = [name for name in available if (pred_dir / name).is_dir()]
    if not chosen:
        raise DataError(
            f"none of the {len(available)} GT sequences in {gt_dir} has a prediction folder in "
            f"{pred_dir} — predictions must be <pred>/<seq>/NNNNN.png"
        )
    skipped = [name for name in available if name not in chosen]
    if skipped:
        shown = ", ".join(skipped[:10]) + (", ..." if len(skipped) > 10 else "")
        print(
            f"note: {len(skipped)} GT sequence(s) have no prediction folder and are not scored: "
            f"{shown} (name them with --sequences to require them)",
            file=sys.stderr,
        )
    return chosen


def _decode(path: Path, packed: bool, optional: bool = False) -> tuple[tuple[int, int], np.ndarray] | None:
    """``(size, frame)`` of one mask PNG; None if ``optional`` and there is no such file.

    ``frame`` is the ``(H, W) uint8`` labels, or with ``packed`` their ``pack_rows`` (any
    non-zero label is the object, 8 pixels a byte): all that single-object scoring needs, in an
    eighth of the memory, packed here in the decoding thread.
    """
    if optional and not path.is_file():
        return None
    labels = read_mask(path)
    return labels.shape, pack_rows(labels) if packed else labels


class PendingSequence:
    """One sequence's GT and prediction frames, submitted to a thread pool in frame order."""

    def __init__(self, gt_dir: Path, pred_dir: Path, name: str, pool: ThreadPoolExecutor, packed: bool):
        self.packed = packed
        self.gt_paths = sorted((gt_dir / name).glob("*.png"))
        self.pred_paths = [pred_dir / name / p.name for p in self.gt_paths]
        self.gt = [pool.submit(_decode, p, packed) for p in self.gt_paths]
        self.pred = [pool.submit(_decode, p, packed, True) for p in self.pred_paths]

    def result(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """``(gt, pred, (H, W))``: all N frames stacked (labels, or packed rows), checked in order.

        A missing unscored prediction (frame 0 or N-1) reads as empty; a missing scored one, or
        any frame whose size differs from GT frame 0, is a DataError naming the files.
        """
        gt_frames = [future.result() for future in self.gt]
        size = gt_frames[0][0]
        for path, (shape, _) in zip(self.gt_paths, gt_frames):
            if shape != size:
                raise DataError(
                    f"GT {path} is {shape[1]}x{shape[0]} but {self.gt_paths[0]} is "
                    f"{size[1]}x{size[0]} — all masks of a sequence must have one size"
                )
        empty = np.zeros(size, np.uint8)
        last = len(self.gt_paths) - 1
        pred_frames = []
        for i, (path, gt_path, future) in enumerate(zip(self.pred_paths, self.gt_paths, self.pred)):
            decoded = future.result()
            if decoded is None:
                if 0 < i < last:
                    raise DataError(
                        f"prediction missing: {path} (GT frame {gt_path}) — every annotated frame "
                        "but the first and the last needs a prediction PNG with the GT frame's name"
                    )
                decoded = size, pack_rows(empty) if self.packed else empty
            shape, frame = decoded
            if shape != size:
                raise DataError(
                    f"prediction {path} is {shape[1]}x{shape[0]} but its GT {gt_path} is "
                    f"{size[1]}x{size[0]} — predictions must have the annotation's size (no "
                    "resizing is done)"
                )
            pred_frames.append(frame)
        return np.stack([frame for _, frame in gt_frames]), np.stack(pred_frames), size


def _score(sequence: PendingSequence, name: str, multi_object: bool) -> dict[str, dict[str, np.ndarray]]:
    """``{object name: {"J", "F"}}`` of one loaded sequence."""
    gt, pred, size = sequence.result()
    if not multi_object:
        return {name: evaluate_sequence_rows(gt, pred, size, name=name)[1]}
    if (gt[0] == 255).any() and np.isin(gt[0], (0, 255)).all():
        raise DataError(
            f"sequence {name!r}: GT frame {sequence.gt_paths[0].name} holds only 0/255, i.e. no "
            "object ids in DAVIS 2017 semantics (255 is void) — these are DAVIS 2016 binary "
            "masks: drop --multi-object"
        )
    frame_names = [p.name for p in sequence.gt_paths]
    per_object = evaluate_sequence(gt, pred, True, name=name, frame_names=frame_names)
    return {f"{name}_{k}": v for k, v in per_object.items()}


def score_sequences(
    pred_dir: Path, gt_dir: Path, names: Sequence[str], multi_object: bool
) -> Iterator[tuple[int, dict[str, dict[str, np.ndarray]]]]:
    """Per sequence: ``(scored frames, {object name: {"J", "F"}})``, with a progress bar.

    PNG decoding is most of the work: the pool decodes the next sequences (``PREFETCH``) while
    this thread scores the current one (both release the GIL), so every core stays busy.
    Single-object frames are packed as they are decoded (``evaluate_sequence_rows``).
    """
    packed = not multi_object
    ahead = PREFETCH["packed" if packed else "labels"]
    pool = ThreadPoolExecutor(READ_THREADS)
    pending: deque[PendingSequence] = deque()
    try:
        for i, name in enumerate(tqdm(names, desc="evaluating", unit="seq")):
            while len(pending) <= ahead and i + len(pending) < len(names):
                pending.append(PendingSequence(gt_dir, pred_dir, names[i + len(pending)], pool, packed))
            sequence = pending.popleft()
            yield len(sequence.gt_paths) - 2, _score(sequence, name, multi_object)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _evaluate(pred_dir: Path, gt_dir: Path, resolution: str, sequences, multi_object: bool):
    """``(summarize() dict, number of scored frames)``."""
    folder = gt_folder(gt_dir, resolution)
    names = select_sequences(folder, pred_dir, sequences)
    per_object, frames = {}, 0
    for scored, objects in score_sequences(pred_dir, folder, names, multi_object):
        per_object.update(objects)
        frames += scored
    if not per_object:
        raise DataError(f"no object to score: GT frame 0 of {names} has no object labels")
    return summarize(per_object), frames


def evaluate_folders(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    sequences: Sequence[str] | None = None,
    multi_object: bool = False,
    resolution: str = "480p",
) -> dict:
    """Official J/F of a prediction folder: ``summarize()``'s ``{"global", "sequences"}`` dict."""
    return _evaluate(Path(pred_dir), Path(gt_dir), resolution, sequences, multi_object)[0]


def format_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Right-aligned columns; floats with 6 decimals."""
    cells = [list(header)] + [[f"{v:.6f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def write_csvs(folder: Path, result: dict) -> None:
    """``global_results-val.csv`` and ``per-sequence_results-val.csv`` as the official tool writes them."""
    tables = {
        "global_results-val.csv": (GLOBAL_KEYS, [[result["global"][k] for k in GLOBAL_KEYS]]),
        "per-sequence_results-val.csv": (
            ("Sequence", "J-Mean", "F-Mean"),
            [[name, row["J-Mean"], row["F-Mean"]] for name, row in result["sequences"].items()],
        ),
    }
    for filename, (header, rows) in tables.items():
        with atomic_path(folder / filename) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows([f"{v:.3f}" if isinstance(v, float) else v for v in row] for row in rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m osvos_pl.evaluate",
        description="Official DAVIS J/F (region similarity, contour accuracy) of a folder of predictions.",
    )
    parser.add_argument("--pred", required=True, type=Path, help="folder of <seq>/NNNNN.png predictions")
    parser.add_argument("--gt", required=True, type=Path, help="DAVIS root, or a folder of <seq>/ mask folders")
    parser.add_argument("--sequences", nargs="+", help="sequences to score (default: all with predictions)")
    semantics = parser.add_mutually_exclusive_group()
    semantics.add_argument(
        "--multi-object", action="store_true",
        help="DAVIS 2017 semantics: labels 1..K are objects, 255 is void (default: on for a DAVIS 2017 "
             "root, else any non-zero is the object)",
    )
    semantics.add_argument(
        "--single-object", action="store_true",
        help="any non-zero label is the object, even in a DAVIS 2017 root (all objects as one)",
    )
    parser.add_argument("--resolution", default="480p", help="Annotations/<resolution> of a DAVIS root")
    parser.add_argument("--out", type=Path, help="write the run record (JSON) here")
    parser.add_argument("--csv", type=Path, help="write the official CSV files into this folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 with a message on stderr for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started, start = now_iso(), time.perf_counter()
    multi_object = args.multi_object or (is_davis2017_root(args.gt) and not args.single_object)
    if multi_object and not args.multi_object:
        print(f"note: {args.gt} is a DAVIS 2017 root (ImageSets/2017): scoring each object id "
              "(--multi-object semantics, 255 = void)", file=sys.stderr)
    try:
        result, frames = _evaluate(args.pred, args.gt, args.resolution, args.sequences, multi_object)
    except OSVOSError as exc:
        return input_error(exc)
    seconds = time.perf_counter() - start  # reading + scoring; frames = scored frames
    print("--------------------------- Global results ---------------------------")
    print(format_table(GLOBAL_KEYS, [[result["global"][k] for k in GLOBAL_KEYS]]))
    print("\n---------- Per sequence results ----------")
    print(format_table(
        ("Sequence", *STAT_KEYS),
        [[name, *(row[k] for k in STAT_KEYS)] for name, row in result["sequences"].items()],
    ))
    if args.csv:
        write_csvs(args.csv, result)
    if args.out:
        atomic_write_json(args.out, {
            "experiment": "evaluate",
            "overrides": argv,
            "started": started,
            "finished": now_iso(),
            **result,
            "timing": {"seconds": seconds, "frames_per_s": frames / seconds if seconds > 0 else 0.0},
            "artifacts": {"predictions": str(args.pred)},
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
