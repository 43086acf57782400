"""The official DAVIS semi-supervised evaluation as one standalone program, for timing end to end.

``python benchmarks/official_eval.py --pred DIR --gt DAVIS_ROOT [--out results.json]``

What it reproduces: the end-to-end work of the official DAVIS 2017 evaluation
(github.com/davisvideochallenge/davis2017-evaluation, ``evaluation_method.py --task
semi-supervised``, davis2017/{davis,results,evaluation,metrics,utils}.py), which cannot be
installed here (not on PyPI). It was written from reading that code (commit ``30b698a``) and
``reference/davis_metrics.md`` (which describes HEAD ``ac7c43fc``), not copied; step by step:

- start-up: the modules the official program imports before it evaluates anything — numpy,
  Pillow, OpenCV, tqdm and ``scipy.optimize`` (``evaluation.py`` imports
  ``linear_sum_assignment`` at module level); ``skimage.morphology.disk`` is imported at the
  first boundary measure, as ``metrics.f_measure`` does. (The official program also imports
  pandas for its tables; pandas is not installed here, so that import is *not* paid: this
  baseline is, if anything, faster than the real one.)
- reading (``DAVIS._get_all_elements``, ``Results.read_masks``): every PNG is opened with PIL
  one at a time, in one thread, and copied into a float64 ``(N, H, W)`` array; GT label 255
  (void) is set to 0; objects are split into ``(K, N, H, W)`` boolean stacks by comparing a
  float64 array of ids with the labels; frames 0 and N-1 are dropped; prediction frames are
  looked up by the GT's frame names (a missing one aborts); a prediction with fewer objects than
  the GT is zero-padded, one with more aborts (HEAD semantics).
- J (``db_eval_iou``): all frames of an object at once. Semi-supervised evaluation passes no
  void mask, so the metrics build an all-false one (void pixels were already set to background).
- F (``db_eval_boundary`` → ``f_measure``): frame by frame: ``_seg2bmap`` of both masks (shifted
  copies, XOR, border fix-ups), ``cv2.dilate`` of both boundary maps with
  ``skimage.morphology.disk(ceil(0.008 * diagonal))``, match counts, the empty-map rules.
- statistics (``utils.db_statistics``): NaN-aware mean, recall (> 0.5), decay over 4 bins with
  uint8 edges; global = mean over objects, J&F-Mean = (J-Mean + F-Mean) / 2.
- output: the global and per-sequence tables on stdout; ``--csv`` writes the two official CSV
  files (with the csv module instead of pandas, same "%.3f" values).

Deliberate differences, none of which changes a number: DAVIS 2016 binary masks (0/255) are
binarised (any non-zero = object 1) unless ``--multi-object`` is given, as fperazzi/davis-2017's
``--single-object`` does (fed unchanged, the 2017 tool would read 255 as void and find no
object); sequences are the GT's sequences that have a prediction folder (or ``--sequences``)
instead of an ImageSets list; results are written to ``--out``/``--csv`` rather than into the
results folder, and existing CSV files there are not reused (the official program skips the
evaluation when it finds them); single-object rows are named ``<seq>``, as ours are, instead of
``<seq>_1``; ``--out`` writes the full-precision numbers as JSON, in the same
``{"global", "sequences"}`` shape as ``python -m osvos_pl.evaluate --out``, so that
``benchmarks/bench_evaluate.py`` can check that both programs agree to the last digit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from glob import glob

import cv2
import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment  # noqa: F401 -- imported by the official evaluation.py
from tqdm import tqdm

VOID_LABEL = 255
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


def read_all_masks(paths: list[str], binarise: bool, void_to_zero: bool) -> np.ndarray:
    """``(N, H, W) float64`` labels, one PIL decode per frame, as the official loaders do."""
    first = np.array(Image.open(paths[0]))
    masks = np.zeros((len(paths), *first.shape))
    for i, path in enumerate(paths):
        labels = np.array(Image.open(path))
        masks[i, ...] = labels > 0 if binarise else labels
        if void_to_zero:
            masks[i, masks[i, ...] == VOID_LABEL] = 0
    return masks


def split_objects(masks: np.ndarray, num_objects: int) -> np.ndarray:
    """``(K, N, H, W)`` bool: object k's pixels, via a float64 id array as the official code does."""
    ids = np.ones((num_objects, *masks.shape)) * np.arange(1, num_objects + 1)[:, None, None, None]
    return (ids == masks[None, ...]) > 0


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """J of every frame of one object, ``(N,)``; no void mask (an all-false one is built)."""
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    valid = np.logical_not(np.zeros_like(segmentation))
    inters = np.sum((segmentation & annotation) & valid, axis=(-2, -1))
    union = np.sum((segmentation | annotation) & valid, axis=(-2, -1))
    j = inters / union
    j[np.isclose(union, 0)] = 1
    return j


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary map, offset half a pixel towards the origin (D. Martin's definition)."""
    seg = seg.astype(bool)
    seg[seg > 0] = 1
    east, south, southeast = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    southeast[:-1, :-1] = seg[1:, 1:]
    bmap = seg ^ east | seg ^ south | seg ^ southeast
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = 0
    return bmap


def f_measure(foreground: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """F of one frame: boundary precision/recall within a disk of ceil(0.008 * diagonal) px."""
    from skimage.morphology import disk  # the official f_measure imports it here, on every call

    void_pixels = np.zeros_like(foreground).astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground.shape))
    fg_boundary = seg2bmap(foreground * np.logical_not(void_pixels))
    gt_boundary = seg2bmap(gt * np.logical_not(void_pixels))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_match, fg_match = gt_boundary * fg_dil, fg_boundary * gt_dil
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = np.sum(fg_match) / float(n_fg), np.sum(gt_match) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation: np.ndarray, segmentation: np.ndarray) -> np.ndarray:
    """F of every frame of one object, one frame at a time, ``(N,)``."""
    f_res = np.zeros(annotation.shape[0])
    for t in range(annotation.shape[0]):
        f_res[t] = f_measure(segmentation[t], annotation[t])
    return f_res


def db_statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (> 0.5) and decay (first minus last of 4 bins with uint8 edges)."""
    mean, recall = np.nanmean(per_frame), np.nanmean(per_frame > 0.5)
    ids = (np.round(np.linspace(1, len(per_frame), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [per_frame[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return mean, recall, np.nanmean(bins[0]) - np.nanmean(bins[3])


def evaluate_sequence(gt_dir: str, pred_dir: str, seq: str, multi_object: bool):
    """``{object name: (J, F)}`` of one sequence, the way ``DAVISEvaluation.evaluate`` does it."""
    gt_paths = np.sort(glob(os.path.join(gt_dir, seq, "*.png"))).tolist()
    gt = read_all_masks(gt_paths, binarise=not multi_object, void_to_zero=True)
    frame_ids = ["".join(os.path.basename(p).split(".")[:-1]) for p in gt_paths]
    gt_objects = split_objects(gt, int(np.max(gt[0, ...])))[:, 1:-1]
    pred_paths = [os.path.join(pred_dir, seq, f"{frame}.png") for frame in frame_ids[1:-1]]
    missing = [p for p in pred_paths if not os.path.isfile(p)]
    if missing:
        sys.exit(f"{seq} frame {missing[0]} not found!")
    pred = read_all_masks(pred_paths, binarise=not multi_object, void_to_zero=False)
    pred_objects = split_objects(pred, int(np.max(pred)))
    if pred_objects.shape[0] > gt_objects.shape[0]:
        sys.exit(f"{seq}: in your PNG files there is an index higher than the number of objects")
    if pred_objects.shape[0] < gt_objects.shape[0]:
        padding = np.zeros((gt_objects.shape[0] - pred_objects.shape[0], *pred_objects.shape[1:]))
        pred_objects = np.concatenate([pred_objects, padding], axis=0)
    results = {}
    for k in range(gt_objects.shape[0]):
        j = db_eval_iou(gt_objects[k], pred_objects[k])
        f = db_eval_boundary(gt_objects[k], pred_objects[k])
        results[f"{seq}_{k + 1}" if multi_object else seq] = (j, f)
    return results


def gt_folder(gt: str, resolution: str) -> str:
    annotations = os.path.join(gt, "Annotations", resolution)
    return annotations if os.path.isdir(annotations) else gt


def select_sequences(gt_dir: str, pred_dir: str, sequences: list[str] | None) -> list[str]:
    if sequences:
        return sequences
    return sorted(s for s in os.listdir(gt_dir)
                  if glob(os.path.join(gt_dir, s, "*.png")) and os.path.isdir(os.path.join(pred_dir, s)))


def summarise(per_object: dict) -> dict:
    stats = {"J": {"M": [], "R": [], "D": []}, "F": {"M": [], "R": [], "D": []}}
    rows = {}
    for name, (j, f) in per_object.items():
        jm, jr, jd = db_statistics(j)
        fm, fr, fd = db_statistics(f)
        for key, values in (("J", (jm, jr, jd)), ("F", (fm, fr, fd))):
            for stat, value in zip("MRD", values):
                stats[key][stat].append(value)
        rows[name] = {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr,
                      "F-Decay": fd, "frames": len(j)}
    j_stats, f_stats = stats["J"], stats["F"]
    final_mean = (np.mean(j_stats["M"]) + np.mean(f_stats["M"])) / 2.0
    values = [final_mean, np.mean(j_stats["M"]), np.mean(j_stats["R"]), np.mean(j_stats["D"]),
              np.mean(f_stats["M"]), np.mean(f_stats["R"]), np.mean(f_stats["D"])]
    as_float = {name: {k: float(v) if k != "frames" else v for k, v in row.items()} for name, row in rows.items()}
    return {"global": {k: float(v) for k, v in zip(GLOBAL_KEYS, values)}, "sequences": as_float}


def print_tables(result: dict) -> None:
    print("--------------------------- Global results ---------------------------")
    print("  ".join(GLOBAL_KEYS))
    print("  ".join(f"{result['global'][k]:.6f}" for k in GLOBAL_KEYS))
    print("\n---------- Per sequence results ----------")
    print("Sequence  J-Mean  F-Mean")
    for name, row in result["sequences"].items():
        print(f"{name}  {row['J-Mean']:.6f}  {row['F-Mean']:.6f}")


def write_csvs(folder: str, result: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "global_results-val.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(GLOBAL_KEYS)
        writer.writerow([f"{result['global'][k]:.3f}" for k in GLOBAL_KEYS])
    with open(os.path.join(folder, "per-sequence_results-val.csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("Sequence", "J-Mean", "F-Mean"))
        writer.writerows([name, f"{row['J-Mean']:.3f}", f"{row['F-Mean']:.3f}"]
                         for name, row in result["sequences"].items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, help="folder of <seq>/NNNNN.png predictions")
    parser.add_argument("--gt", required=True, help="DAVIS root, or a folder of <seq>/ mask folders")
    parser.add_argument("--sequences", nargs="+")
    parser.add_argument("--multi-object", action="store_true")
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--out", help="write the full-precision numbers here (JSON)")
    parser.add_argument("--csv", help="write the two official CSV files into this folder")
    args = parser.parse_args(argv)
    start = time.time()
    gt_dir = gt_folder(args.gt, args.resolution)
    per_object = {}
    for seq in tqdm(select_sequences(gt_dir, args.pred, args.sequences)):
        per_object.update(evaluate_sequence(gt_dir, args.pred, seq, args.multi_object))
    result = summarise(per_object)
    print_tables(result)
    if args.csv:
        write_csvs(args.csv, result)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    print(f"\nTotal time: {time.time() - start:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
