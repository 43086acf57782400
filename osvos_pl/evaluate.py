"""``python -m osvos_pl.evaluate --pred DIR --gt DAVIS_ROOT`` — official DAVIS J/F of any predictions.

GT is a DAVIS root (``Annotations/<resolution>/<seq>/NNNNN.png``) or a folder of ``<seq>/``
mask folders; predictions are ``<pred>/<seq>/NNNNN.png``, looked up by the GT's frame names
(frames 0 and N-1 are not scored and may be missing). Prints the global table and one row per
object; ``--out`` writes a run record (JSON, atomically), ``--csv`` the two official CSV files.
``evaluate_folders`` is the same as a library call.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from osvos_pl.data.io import read_mask
from osvos_pl.errors import DataError, OSVOSError
from osvos_pl.metrics import GLOBAL_KEYS, evaluate_sequence, summarize
from osvos_pl.records import now_iso
from osvos_pl.utils.atomic import atomic_path, atomic_write_json

READ_THREADS = min(8, os.cpu_count() or 1)  # PNG decoding releases the GIL


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


def _read_prediction(path: Path, gt_path: Path, shape: tuple[int, int], scored: bool) -> np.ndarray:
    """One prediction frame's labels; an unscored missing frame reads as empty."""
    if not path.is_file():
        if scored:
            raise DataError(
                f"prediction missing: {path} (GT frame {gt_path}) — every annotated frame but the "
                "first and the last needs a prediction PNG with the GT frame's name"
            )
        return np.zeros(shape, np.uint8)
    labels = read_mask(path)
    if labels.shape != shape:
        raise DataError(
            f"prediction {path} is {labels.shape[1]}x{labels.shape[0]} but its GT {gt_path} is "
            f"{shape[1]}x{shape[0]} — predictions must have the annotation's size (no resizing "
            "is done)"
        )
    return labels


def load_sequence(gt_dir: Path, pred_dir: Path, name: str, pool: ThreadPoolExecutor):
    """``(gt, pred, frame_names)``: ``(N, H, W) uint8`` labels of one sequence, checked."""
    gt_paths = sorted((gt_dir / name).glob("*.png"))
    gt_frames = list(pool.map(read_mask, gt_paths))
    shape = gt_frames[0].shape
    for path, frame in zip(gt_paths, gt_frames):
        if frame.shape != shape:
            raise DataError(
                f"GT {path} is {frame.shape[1]}x{frame.shape[0]} but {gt_paths[0]} is "
                f"{shape[1]}x{shape[0]} — all masks of a sequence must have one size"
            )
    last = len(gt_paths) - 1
    pred_frames = pool.map(
        lambda i: _read_prediction(pred_dir / name / gt_paths[i].name, gt_paths[i], shape, 0 < i < last),
        range(len(gt_paths)),
    )
    return np.stack(gt_frames), np.stack(list(pred_frames)), [p.name for p in gt_paths]


def score_sequences(
    pred_dir: Path, gt_dir: Path, names: Sequence[str], multi_object: bool
) -> Iterator[tuple[int, dict[str, dict[str, np.ndarray]]]]:
    """Per sequence: ``(scored frames, {object name: {"J", "F"}})``, with a progress bar."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for name in tqdm(names, desc="evaluating", unit="seq"):
            gt, pred, frame_names = load_sequence(gt_dir, pred_dir, name, pool)
            if multi_object and (gt[0] == 255).any() and np.isin(gt[0], (0, 255)).all():
                raise DataError(
                    f"sequence {name!r}: GT frame {frame_names[0]} holds only 0/255, i.e. no object "
                    "ids in DAVIS 2017 semantics (255 is void) — these are DAVIS 2016 binary "
                    "masks: drop --multi-object"
                )
            per_object = evaluate_sequence(gt, pred, multi_object, name=name, frame_names=frame_names)
            keys = {k: f"{name}_{k}" if multi_object else name for k in per_object}
            yield len(gt) - 2, {keys[k]: v for k, v in per_object.items()}


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
    parser.add_argument(
        "--multi-object", action="store_true",
        help="DAVIS 2017 semantics: labels 1..K are objects, 255 is void (default: any non-zero is the object)",
    )
    parser.add_argument("--resolution", default="480p", help="Annotations/<resolution> of a DAVIS root")
    parser.add_argument("--out", type=Path, help="write the run record (JSON) here")
    parser.add_argument("--csv", type=Path, help="write the official CSV files into this folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (1 with a message on stderr for bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started, start = now_iso(), time.perf_counter()
    try:
        result, frames = _evaluate(args.pred, args.gt, args.resolution, args.sequences, args.multi_object)
    except OSVOSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start  # reading + scoring; frames = scored frames
    print("--------------------------- Global results ---------------------------")
    print(format_table(GLOBAL_KEYS, [[result["global"][k] for k in GLOBAL_KEYS]]))
    print("\n---------- Per sequence results ----------")
    print(format_table(
        ("Sequence", "J-Mean", "F-Mean"),
        [[name, row["J-Mean"], row["F-Mean"]] for name, row in result["sequences"].items()],
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
