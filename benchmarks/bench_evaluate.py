"""Time ``python -m osvos_pl.evaluate`` against the official DAVIS evaluation, end to end.

``python benchmarks/bench_evaluate.py [--repeat 5] [--gt DAVIS_ROOT --pred DIR]``

Both programs run as fresh subprocesses on the same folders — interpreter start-up, imports, PNG
decoding, scoring and output included — alternately (ours, official, ours, official, ...), so
that a slow spell of this shared machine hits both; each program's time is the median of
``--repeat`` runs, wall-clock and CPU (user + system, all threads), and the ratios are
official / ours. "Official" is ``benchmarks/official_eval.py``,
a standalone re-creation of the official davis2017-evaluation program (its docstring says what
it reproduces). Before timing, the two programs' ``--out`` JSON are compared: every global and
per-sequence number must be equal (the largest difference is printed and recorded).

Default input: every sequence of the DAVIS sample (``../shared/data/davis-sample``), with
predictions made from its ground truth by perturbing each frame (erosion, dilation, a shift,
an empty mask now and then), written as 0/255 grey PNGs by ``write_mask`` (Pillow, as the online
stage writes them) into a temporary folder. ``--multi-object`` makes a two-object palette copy
of the sample and predictions for it, and scores DAVIS 2017 semantics. ``--gt``/``--pred`` time
any other folders. Results go to
``benchmarks/results/evaluate-<host>.json`` (``--out``): the machine (CPU model and flags, load
average), package versions (read from package metadata, so that this script never imports
torch), every run's seconds, medians and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from osvos_pl.data.io import write_mask

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared/data/davis-sample"
OFFICIAL = REPO / "benchmarks/official_eval.py"
KERNEL = np.ones((11, 11), np.uint8)


def perturb(i: int, mask: np.ndarray) -> np.ndarray:
    """A prediction-like 0/255 mask from GT frame ``i``: eroded, dilated, shifted or emptied."""
    mask = (mask > 0).astype(np.uint8) * 255
    if i % 17 == 16:
        return np.zeros_like(mask)
    kind = i % 4
    if kind == 0:
        return cv2.erode(mask, KERNEL)
    if kind == 1:
        return cv2.dilate(mask, KERNEL[:7, :7])
    if kind == 2:
        shifted = np.zeros_like(mask)
        shifted[4:, :-6] = mask[:-4, 6:]
        return shifted
    return mask


def write_predictions(gt_dir: Path, out: Path) -> tuple[int, int]:
    """``out/<seq>/NNNNN.png`` (0/255 grey) for every GT sequence; returns (sequences, frames).

    Written with ``write_mask`` (Pillow), as the online stage writes its predictions.
    """
    sequences = frames = 0
    for seq in sorted(p for p in gt_dir.iterdir() if p.is_dir()):
        for i, path in enumerate(sorted(seq.glob("*.png"))):
            gt = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            write_mask(out / seq.name / path.name, perturb(i, gt), palette=False)
            frames += 1
        sequences += 1
    return sequences, frames


def write_multi_object(gt_dir: Path, out: Path) -> tuple[int, int]:
    """A DAVIS 2017-style copy of the sample and predictions for it, palette PNGs.

    GT ``out/Annotations/480p``: each object split at frame 0's median column into objects 1
    and 2, with a void (255) ring on its outline in even frames. Predictions ``out/pred``: each
    object perturbed on its own; every third sequence never predicts object 2 (the official code
    zero-pads it).
    """
    ring = np.ones((3, 3), np.uint8)
    sequences = frames = 0
    for s, seq in enumerate(sorted(p for p in gt_dir.iterdir() if p.is_dir())):
        paths = sorted(seq.glob("*.png"))
        split = int(np.median(np.nonzero(cv2.imread(str(paths[0]), cv2.IMREAD_GRAYSCALE))[1]))
        for i, path in enumerate(paths):
            obj = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
            labels = np.where(obj, np.where(np.arange(obj.shape[1]) < split, 1, 2), 0).astype(np.uint8)
            pred = np.zeros_like(labels)
            for k in (1, 2) if s % 3 != 2 else (1,):
                pred[perturb(i + k, labels == k) > 0] = k
            if i % 2 == 0:
                u8 = obj.astype(np.uint8)
                labels[(cv2.dilate(u8, ring) > 0) & (cv2.erode(u8, ring) == 0)] = 255
            write_mask(out / "Annotations/480p" / seq.name / path.name, labels, palette=True)
            write_mask(out / "pred" / seq.name / path.name, pred, palette=True)
            frames += 1
        sequences += 1
    return sequences, frames


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one subprocess run.

    A failure stops the benchmark with the command's stderr.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(ours: dict, official: dict) -> float:
    """Largest absolute difference over every number of both results; missing keys fail."""
    if list(ours["sequences"]) != list(official["sequences"]):
        sys.exit(f"sequences differ: {list(ours['sequences'])} vs {list(official['sequences'])}")
    pairs = [(ours["global"][k], official["global"][k]) for k in official["global"]]
    for name, row in official["sequences"].items():
        pairs += [(ours["sequences"][name][k], v) for k, v in row.items()]
    return max(abs(a - b) for a, b in pairs)


def lscpu() -> dict:
    """CPU model and flags as lscpu reports them (empty where lscpu is missing)."""
    info = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "Vendor ID", "CPU family", "Model", "CPU(s)", "Flags",
                               "Hypervisor vendor", "L2 cache", "L3 cache"):
                info[key.strip()] = value.strip()
    return info


def versions() -> dict:
    out = {"python": platform.python_version()}
    for package in ("numpy", "opencv-python-headless", "pillow", "scikit-image", "scipy", "tqdm", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[package] = metadata.version(package)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("DAVIS_SAMPLE", DEFAULT_ROOT)),
                        help="DAVIS root whose sequences get perturbed-GT predictions (default: the sample)")
    parser.add_argument("--gt", type=Path, help="GT folder to time instead (DAVIS root or <seq>/ folders)")
    parser.add_argument("--pred", type=Path, help="prediction folder to time instead (needs --gt)")
    parser.add_argument("--multi-object", action="store_true",
                        help="score DAVIS 2017 semantics: a two-object palette copy of --root and "
                             "predictions for it (or --gt/--pred scored with --multi-object)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each program (medians are reported)")
    parser.add_argument("--out", type=Path, default=REPO / f"benchmarks/results/evaluate-{socket.gethostname()}.json")
    args = parser.parse_args()
    if (args.gt is None) != (args.pred is None):
        parser.error("--gt and --pred go together")
    return args


def prepare(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path, str]:
    """``(gt, pred, what they are)``: the given folders, or generated ones under ``tmp``."""
    if args.gt is not None:
        return args.gt, args.pred, f"{args.gt} and {args.pred}"
    if args.multi_object:
        sequences, frames = write_multi_object(args.root / "Annotations/480p", tmp)
        return tmp, tmp / "pred", f"two-object copy of {args.root} ({sequences} sequences, {frames} frames)"
    sequences, frames = write_predictions(args.root / "Annotations/480p", tmp / "pred")
    return args.root, tmp / "pred", f"{args.root} with perturbed-GT predictions ({sequences} sequences, {frames} frames)"


def check_agreement(tmp: Path) -> tuple[dict, float]:
    """The official result and the largest difference from ours; stops if they differ at all."""
    ours, official = (json.loads((tmp / f"{n}.json").read_text()) for n in ("ours", "official"))
    max_diff = compare(ours, official)
    scored = sum(row["frames"] for row in official["sequences"].values())
    print(f"{len(official['sequences'])} objects, {scored} scored frames; largest difference between "
          f"the two programs' numbers: {max_diff:.3g}")
    if max_diff != 0:
        sys.exit("the numbers differ: not timing")
    return official, max_diff


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        tmp = Path(tmp)
        gt, pred, described = prepare(args, tmp)
        print(f"input: {described}")
        common = ["--pred", str(pred), "--gt", str(gt), *(["--multi-object"] if args.multi_object else [])]
        commands = {
            "ours": [sys.executable, "-m", "osvos_pl.evaluate", *common, "--out", str(tmp / "ours.json")],
            "official": [sys.executable, str(OFFICIAL), *common, "--out", str(tmp / "official.json")],
        }
        for command in commands.values():  # warm-up: page cache, .pyc files
            run_once(command)
        official, max_diff = check_agreement(tmp)
        load_before = os.getloadavg()
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for r in range(args.repeat):
            for name, command in commands.items():
                runs[name].append(run_once(command))
            print(f"run {r + 1}/{args.repeat}: " + ", ".join(
                f"{name} {runs[name][-1][0]:.2f} s (CPU {runs[name][-1][1]:.2f} s)" for name in commands))
    write_record(args, described, commands, runs, official, max_diff, load_before)


def write_record(args, described: str, commands: dict, runs: dict, official: dict, max_diff: float,
                 load_before: tuple[float, float, float]) -> None:
    """Print the medians and ratios; write them with the machine and every run to ``args.out``."""
    wall = {name: statistics.median(w for w, _ in values) for name, values in runs.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in runs.items()}
    ratio, cpu_ratio = wall["official"] / wall["ours"], cpu["official"] / cpu["ours"]
    print(f"\nmedian of {args.repeat}, wall: ours {wall['ours']:.2f} s, official {wall['official']:.2f} s, "
          f"ratio {ratio:.1f}x; CPU: ours {cpu['ours']:.2f} s, official {cpu['official']:.2f} s, "
          f"ratio {cpu_ratio:.1f}x  (J&F-Mean {official['global']['J&F-Mean']:.6f} from both)")
    record = {
        "machine": {"host": socket.gethostname(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "lscpu": lscpu(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "versions": versions(),
        "input": {"described": described, "multi_object": args.multi_object,
                  "objects": len(official["sequences"]),
                  "scored_frames": sum(row["frames"] for row in official["sequences"].values())},
        "commands": {name: " ".join(c[1:]) for name, c in commands.items()},
        "runs": {name: [{"wall_s": w, "cpu_s": c} for w, c in values] for name, values in runs.items()},
        "median_wall_s": wall, "median_cpu_s": cpu, "ratio_wall": ratio, "ratio_cpu": cpu_ratio,
        "max_abs_difference": max_diff, "global": official["global"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
