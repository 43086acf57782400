"""``python -m osvos_pl.evaluate --pred DIR --gt DAVIS_ROOT`` — official DAVIS J/F of any predictions.

GT is a DAVIS root (``Annotations/<resolution>/<seq>/NNNNN.png``) or a folder of ``<seq>/``
mask folders; predictions are ``<pred>/<seq>/NNNNN.png``, looked up by the GT's frame names
(frames 0 and N-1 are not scored and may be missing). Prints the global table and one row per
object (``<seq>`` or, DAVIS 2017, ``<seq>_<k>``) with its J and F mean, recall and decay;
``--out`` writes a run record (JSON, atomically), ``--csv`` the two official CSV files.
A DAVIS 2017 root (its splits in ``ImageSets/2017``) is scored with the 2017 semantics
(``--multi-object``: ids 1..K of frame 0, void 255 as background) without being asked
(``--single-object`` scores all its objects as one).
``evaluate_folders`` is the same as a library call. Reading and checking the two folders is
``osvos_pl.data.prediction_folders``; the numbers are ``osvos_pl.metrics``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from osvos_pl.data.prediction_folders import (
    PendingSequence,
    gt_folder,
    is_davis2017_root,
    read_sequences,
    select_sequences,
)
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

# Sequences decoded ahead of the one being scored: packed single-object frames are small (50 kB
# at 480p); multi-object label maps are 8x larger, so only one sequence runs ahead of them.
PREFETCH = {"packed": 2, "labels": 1}


def _score(sequence: PendingSequence, multi_object: bool) -> dict[str, dict[str, np.ndarray]]:
    """``{object name: {"J", "F"}}`` of one loaded sequence."""
    name = sequence.name
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

    Single-object frames are packed as they are decoded (``evaluate_sequence_rows``).
    """
    if multi_object:
        sequences = read_sequences(gt_dir, pred_dir, names, PREFETCH["labels"])
    else:
        sequences = read_sequences(gt_dir, pred_dir, names, PREFETCH["packed"], encode=pack_rows)
    with closing(sequences):  # stops the decoding threads as soon as scoring stops
        for sequence in tqdm(sequences, total=len(names), desc="evaluating", unit="seq"):
            yield len(sequence.gt_paths) - 2, _score(sequence, multi_object)


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
