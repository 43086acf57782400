"""One-shot fine-tuning: J&F against fine-tuning seconds, side by side in one run (issue 15).

``python benchmarks/bench_oneshot.py [--root DAVIS] [--sequences a,b] [--parent CKPT]``

Settings, each a config preset run through the online stage as a user runs it
(``python -m osvos_pl +experiment=online +preset=...``), sequence by sequence:

- ``reference`` (``+preset=reference``): the authors' PyTorch port as a user runs it on a CPU —
  every layer trained, a random warp per update, Adam lr 1e-5, 300 updates, fp32 eager,
  channels-first, 240x427. The baseline every ratio is taken against.
- ``paper`` (``+preset=paper``, ``--paper``): the paper's SGD lr 1e-8 on the summed loss with
  the Caffe multipliers, 500 updates, the 6 fixed views. It was tuned for Caffe VGG weights fed
  BGR 0-255; with the torchvision ImageNet weights used here it learns next to nothing
  (docs/method.md#learning-rate-and-input-scale): it is there to show that, not as a contender.
- ``fast`` (``+preset=fast``, the ``online`` defaults): frozen early stages cached per view,
  low-resolution views, a short warm-up + cosine schedule, bf16 where native; at its default
  budget and at ``--budgets`` (other ``online.iterations``).

Every setting runs from the ImageNet backbone (-PN) and, with ``--parent``, from a parent
checkpoint too. The fast preset at its default budget runs ``--repeat`` times per sequence,
around the reference (fast, reference, fast, ...): this 2-core machine is shared, and its
fine-tuning time is the median of those runs; the ratio is reference seconds / that median.

Inference: the fast preset's fine-tuned network segments ``--infer-frames`` frames of the first
sequence at 480p (data.scale=1) on the fast path (bf16 where native, NHWC, batches of
``--infer-batch``) and as the reference runs it (fp32 eager, NCHW, batch 1), alternately
``--infer-repeat`` times; frames are decoded beforehand, so the time is the network, the resize
to native size and the threshold. Both masks are scored against the annotations (the accuracy
guard: J within 0.5 points, tests/test_fast_path.py).

Writes ``benchmarks/results/oneshot-<host>.json`` (the machine: lscpu model and flags, load
average at every run, torch threads; every run) and a frontier plot next to it (``--plot``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_ROOT = SHARED / "data/davis-sample"
DEFAULT_WEIGHTS = SHARED / "weights/vgg16_imagenet_features_torchvision.pth"


def compose(overrides: list[str], output_dir: Path):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from osvos_pl.runner.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


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


def machine() -> dict:
    from osvos_pl.utils.hardware import bf16_is_native, fast_precision

    return {
        "host": socket.gethostname(), "platform": platform.platform(), "lscpu": lscpu(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_is_native("cpu"), "fast_precision": fast_precision("cpu"),
        "load_average_at_start": os.getloadavg(),
    }


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args, self.runs = args, []
        self.common = [
            "+experiment=online", f"data.root={args.root}", f"model.weights={args.weights}",
            "logger=none", "online.overlays=0", "online.resume=false",
            "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
            f"data.num_workers={args.workers}",
        ]

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def online(self, setting: str, start: str, sequence: str, overrides: list[str]) -> dict:
        """One online-stage run on one sequence; its row (scores, seconds, load)."""
        from osvos_pl.runner.run import run

        parent = [f"parent_ckpt={self.args.parent}"] if start == "parent" else ["parent_ckpt=null"]
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose([*self.common, f"data.sequences=[{sequence}]", *overrides, *parent,
                           *self.args.override], Path(tmp))
            load, t0 = os.getloadavg()[0], time.perf_counter()
            record = run(cfg, Path(tmp))
        row = {
            "setting": setting, "start": start, "sequence": sequence, "overrides": overrides,
            "J": record["global"]["J-Mean"], "F": record["global"]["F-Mean"],
            "JF": record["global"]["J&F-Mean"],
            "finetune_seconds": record["timing"]["finetune_seconds_per_sequence"],
            "inference_ms_per_frame": record["timing"]["inference_ms_per_frame"],
            "iterations": int(cfg.online.iterations), "scale": float(cfg.data.scale),
            "precision": record["config"]["trainer"]["precision"],
            "wall_seconds": time.perf_counter() - t0,
            "load_before": load, "load_after": os.getloadavg()[0],
            "inference_seconds": record["timing"]["sequences"][sequence]["inference_seconds"],
            "frames": record["timing"]["sequences"][sequence]["frames"],
            "prefix": record["timing"].get("prefix"),
        }
        self.runs.append(row)
        self.log(f"{start:8s} {sequence:12s} {setting:14s} J {row['J']:.3f} F {row['F']:.3f} "
                 f"J&F {row['JF']:.3f}  fine-tuning {row['finetune_seconds']:7.1f} s  "
                 f"{row['inference_ms_per_frame']:6.0f} ms/frame  load {load:.1f}")
        return row

    def settings(self) -> list[tuple[str, list[str]]]:
        """(name, overrides) of every setting but the repeated fast default, in run order."""
        out = [("reference", ["+preset=reference"])]
        if self.args.paper:
            out.append(("paper", ["+preset=paper", "data.scale=0.5",
                                  f"online.iterations={self.args.paper_iterations}"]))
        out += [(f"fast@{n}", ["+preset=fast", f"online.iterations={n}"]) for n in self.args.budgets]
        return out

    def plan(self) -> list[tuple[str, str, str, list[str]]]:
        """Every run, in order: ``(setting, start, sequence, overrides)``; per start and sequence
        fast, reference, fast, the other settings, fast (``--repeat`` fast runs in all)."""
        fast = ("fast", ["+preset=fast"])
        (reference, *others), runs = self.settings(), []
        for start in ["imagenet"] + (["parent"] if self.args.parent else []):
            for sequence in self.args.sequences:
                order = [fast, reference, *([fast] if self.args.repeat > 1 else []), *others]
                order += [fast] * max(0, self.args.repeat - 2)
                runs += [(name, start, sequence, overrides) for name, overrides in order]
        return runs

    def run_sequences(self, partial: Path) -> None:
        """Runs the plan; each finished run is appended to ``partial`` (JSON lines), and runs
        found there are not run again: a killed benchmark resumes where it stopped."""
        done = [json.loads(line) for line in partial.read_text().splitlines()] if partial.is_file() else []
        self.runs = list(done)
        for k, (setting, start, sequence, overrides) in enumerate(self.plan()):
            if k < len(done):
                if (done[k]["setting"], done[k]["start"], done[k]["sequence"]) != (setting, start, sequence):
                    raise SystemExit(f"{partial} does not follow this run's plan (run {k}); delete it "
                                     "or rerun with the arguments that wrote it")
                continue
            row = self.online(setting, start, sequence, overrides)
            with partial.open("a") as fh:
                fh.write(json.dumps(row) + "\n")

    def end_to_end(self) -> dict:
        """Seconds per sequence, fine-tuning + inference, as a user runs the online stage: the
        reference setting against the online defaults at 480p (data.scale=1) and at the cpu
        recipe's scale (``--recipe-scale``), sequence by sequence in one run. The frozen
        prefix's set-up (calibration, compilation) happens once per process: it is taken out
        of each run's seconds and added back as its share of a ``--amortise``-sequence run."""
        settings = [("online@recipe", [f"data.scale={self.args.recipe_scale}"]),
                    ("online@480p", ["data.scale=1.0"]), ("reference", ["+preset=reference"])]
        rows = []
        for sequence in self.args.sequences:
            for name, overrides in settings:
                row = self.online(name, "imagenet", sequence, overrides)
                setup = (row["prefix"] or {}).get("setup_seconds", 0.0)
                row["sequence_seconds_measured"] = row["finetune_seconds"] + row["inference_seconds"]
                row["prefix_setup_seconds"] = setup
                row["sequence_seconds"] = (row["sequence_seconds_measured"] - setup
                                           + setup / self.args.amortise)
                rows.append(row)
                self.log(f"    {name:14s} {sequence:12s} {row['sequence_seconds']:7.1f} s per sequence "
                         f"(fine-tuning {row['finetune_seconds']:.1f} s + inference "
                         f"{row['inference_seconds']:.1f} s for {row['frames']} frames; prefix set-up "
                         f"{setup:.1f} s, 1/{self.args.amortise} of it counted)")
        summary = {}
        for name, _ in settings:
            mine = [r for r in rows if r["setting"] == name]
            summary[name] = {"sequence_seconds": float(np.mean([r["sequence_seconds"] for r in mine])),
                             "JF": float(np.mean([r["JF"] for r in mine])),
                             "J": float(np.mean([r["J"] for r in mine])),
                             "prefix_setup_seconds": float(np.mean([r["prefix_setup_seconds"]
                                                                    for r in mine]))}
        ref = summary["reference"]["sequence_seconds"]
        for row in summary.values():
            row["fraction_of_reference"] = row["sequence_seconds"] / ref
        for name, row in summary.items():
            self.log(f"end to end {name:14s} {row['sequence_seconds']:7.1f} s per sequence "
                     f"({row['fraction_of_reference']:.3f} of the reference, 1/"
                     f"{1 / row['fraction_of_reference']:.1f}), J&F {row['JF']:.3f}")
        return {"settings": dict(settings), "summary": summary, "runs": rows,
                "amortised_over": self.args.amortise}

    def inference(self) -> dict:
        """ms per 480p frame and J per path, every path on the same fine-tuned weights.

        Paths: ``reference`` (fp32 eager, NCHW, batch 1) and the fast path (the engine's
        precision, NHWC, batches of ``--infer-batch``) with its frozen prefix ``eager``,
        ``compiled`` and ``int8`` (``online.prefix``). Each sequence of ``--infer-sequences``
        is fine-tuned once on the fast preset's path and segments ``--infer-frames`` frames
        (evenly spaced) on every path: J per path is the mean over those sequences. Times are
        the median of ``--infer-repeat`` passes over the first sequence's frames after one
        warm-up pass; the warm-up's compilation and the int8 calibration are reported apart,
        as set-up seconds per process.
        """
        import pytorch_lightning as pl
        from hydra.utils import instantiate
        from torch.utils.data import DataLoader

        from osvos_pl.metrics import jf_per_frame
        from osvos_pl.stages.assembly import build_datamodule
        from osvos_pl.stages.engine import Engine
        from osvos_pl.stages.parent_network import parent_network as load_parent

        args = self.args
        sequences = args.infer_sequences or args.sequences[:1]
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose([*self.common, f"data.sequences=[{','.join(sequences)}]",
                           "+preset=fast", "parent_ckpt=null", *args.override], Path(tmp))
            parent, normalization = load_parent(cfg)
            dm = build_datamodule(cfg, normalization)
            reference = Engine.create(pl.Trainer, "cpu", "32-true", False, Path(tmp))
            fast = Engine.create(pl.Trainer, "cpu", cfg.trainer.precision,
                                 cfg.model.channels_last, Path(tmp))

            def frames_at_480p(sequence: str) -> torch.utils.data.Subset:
                dataset = dm.sequence_dataset(sequence)
                dataset.scale = 1.0
                count = len(dataset)
                picks = np.linspace(1, count - 1, min(args.infer_frames, count - 1))
                return torch.utils.data.Subset(dataset, sorted(set(picks.round().astype(int))))

            calibration = [frames_at_480p(s).dataset[0]["image"][None] for s in sequences]
            paths = {"reference": (reference, "eager", 1), "eager": (fast, "eager", args.infer_batch),
                     "compiled": (fast, "compiled", args.infer_batch),
                     "int8": (fast, "int8", args.infer_batch)}
            segmenters = {name: instantiate(cfg.task, parent=parent, engine=engine, progress=False,
                                            prefix=mode, prefix_images=lambda: calibration)
                          for name, (engine, mode, _) in paths.items()}
            tuner = segmenters[args.infer_tune_on]
            rows, seconds, setup = {}, {name: [] for name in paths}, {}
            for k, sequence in enumerate(sequences):
                pl.seed_everything(int(cfg.seed), verbose=False)
                ft = tuner.finetuning
                nets, tuning = tuner.finetune({1: instantiate(cfg.online.first_frames).of(
                    dm, sequence, ft.samples, seed=int(cfg.seed))}, sequence)
                frames = frames_at_480p(sequence)
                truth = np.stack([frames.dataset[int(i)]["labels"].numpy()
                                  for i in frames.indices]) > 0
                rows[sequence] = {"frames": len(frames), "finetune_seconds": tuning, "J": {}}
                for name, (_, _, batch) in paths.items():
                    if name == "reference":  # NCHW weights too (a fast pass leaves them NHWC)
                        for net in nets.values():
                            net.to(memory_format=torch.contiguous_format)
                    batches = list(DataLoader(frames, batch_size=batch))
                    seg = segmenters[name]
                    passes = 1 + (args.infer_repeat if k == 0 else 0)
                    for p in range(passes):
                        t0 = time.perf_counter()
                        masks = np.stack([m for _, m in seg.segment(nets, batches, sequence)]) > 0
                        if k == 0 and p > 0:
                            seconds[name].append(time.perf_counter() - t0)
                    if k == 0:
                        setup[name] = seg.prefix_timing["setup_seconds"]
                    rows[sequence]["J"][name] = float(jf_per_frame(truth, masks)[0].mean())
                self.log(f"  {sequence:16s} J " + "  ".join(
                    f"{n} {j:.4f}" for n, j in rows[sequence]["J"].items()))
            setup_total = {name: seg.prefix_timing["setup_seconds"] for name, seg in segmenters.items()}
        n = rows[sequences[0]]["frames"]
        ms = {name: 1000 * statistics.median(s) / n for name, s in seconds.items()}
        j = {name: float(np.mean([r["J"][name] for r in rows.values()])) for name in paths}
        result = {
            "sequences": sequences, "timed_sequence": sequences[0], "timed_frames": n,
            "input_hw": list(frames_at_480p(sequences[0])[0]["image"].shape[-2:]),
            "fast_batch": args.infer_batch, "fast_precision": fast.precision,
            "fast_channels_last": fast.channels_last, "finetuned_on": args.infer_tune_on,
            "calibration_images": len(calibration), "ms_per_frame": ms,
            "speedup_vs_reference": {name: ms["reference"] / v for name, v in ms.items()},
            "seconds_per_repeat": seconds, "J": j,
            "J_difference_points": {name: 100 * (v - j["reference"]) for name, v in j.items()},
            "setup_seconds_first_sequence": setup, "setup_seconds_total": setup_total,
            "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default (warm)"),
            "per_sequence": rows,
        }
        self.log(f"inference at 480p ({n} frames of {sequences[0]}, {fast.precision}): " + ", ".join(
            f"{name} {v:.0f} ms/frame ({result['speedup_vs_reference'][name]:.2f}x)"
            for name, v in ms.items()))
        self.log(f"J over {len(sequences)} sequence(s), same weights: " + ", ".join(
            f"{name} {v:.4f} ({result['J_difference_points'][name]:+.2f} points)"
            for name, v in j.items()))
        self.log("prefix set-up (export, calibration, compilation) per process: " + ", ".join(
            f"{name} {v:.1f} s" for name, v in setup_total.items()))
        return result


def summarise(runs: list[dict]) -> dict:
    """Per start and setting: per-sequence medians of the runs, mean J&F, ratios to reference."""
    out: dict = {}
    for row in runs:
        key = out.setdefault(row["start"], {}).setdefault(row["setting"], {})
        key.setdefault(row["sequence"], []).append(row)
    summary = {}
    for start, settings in out.items():
        summary[start] = {}
        for setting, sequences in settings.items():
            per_seq = {}
            for seq, rows in sequences.items():
                per_seq[seq] = {
                    "J": rows[0]["J"], "F": rows[0]["F"], "JF": rows[0]["JF"],
                    "JF_spread": max(r["JF"] for r in rows) - min(r["JF"] for r in rows),
                    "finetune_seconds": statistics.median(r["finetune_seconds"] for r in rows),
                    "finetune_seconds_runs": [r["finetune_seconds"] for r in rows],
                    "inference_ms_per_frame": statistics.median(
                        r["inference_ms_per_frame"] for r in rows),
                    "iterations": rows[0]["iterations"],
                }
            summary[start][setting] = {
                "sequences": per_seq,
                "JF": float(np.mean([v["JF"] for v in per_seq.values()])),
                "finetune_seconds": float(np.mean([v["finetune_seconds"] for v in per_seq.values()])),
            }
        ref = summary[start].get("reference")
        for row in summary[start].values():
            if ref:
                row["time_ratio_to_reference"] = row["finetune_seconds"] / ref["finetune_seconds"]
                row["JF_minus_reference"] = row["JF"] - ref["JF"]
                row["per_sequence_time_ratio"] = {
                    s: v["finetune_seconds"] / ref["sequences"][s]["finetune_seconds"]
                    for s, v in row["sequences"].items() if s in ref["sequences"]}
    return summary


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {"imagenet": "tab:blue", "parent": "tab:orange"}
    for start, settings in summary.items():
        label = "-PN (ImageNet)" if start == "imagenet" else "from a parent"
        fast = sorted(((v["finetune_seconds"], v["JF"]) for k, v in settings.items()
                       if k.startswith("fast")))
        if fast:
            ax.plot(*zip(*fast), "o-", color=colours[start], label=f"fast preset, {label}")
        if "fast" in settings:
            v = settings["fast"]
            ax.plot(v["finetune_seconds"], v["JF"], "*", ms=14, color=colours[start])
        for name, marker in (("reference", "s"), ("paper", "x")):
            if name in settings:
                v = settings[name]
                ax.plot(v["finetune_seconds"], v["JF"], marker, ms=9, color=colours[start],
                        label=f"{name}, {label}")
        if "reference" in settings:
            ref = settings["reference"]
            ax.axvline(ref["finetune_seconds"] / 10, color=colours[start], ls=":", lw=1)
            ax.axhline(ref["JF"], color=colours[start], ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("fine-tuning seconds per sequence (log)")
    ax.set_ylabel("J&F-Mean")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="DAVIS root")
    parser.add_argument("--sequences", default=None,
                        help="comma-separated sequences (default: the root's val split)")
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS,
                        help="ImageNet VGG16 state dict (torchvision keys)")
    parser.add_argument("--parent", type=Path, default=None,
                        help="parent checkpoint: run every setting from it as well")
    parser.add_argument("--budgets", default="", help="extra fast-preset budgets (updates), e.g. 50,100")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the fast default per sequence, around the reference")
    parser.add_argument("--paper", action="store_true", help="run the paper's settings too")
    parser.add_argument("--paper-iterations", type=int, default=500)
    parser.add_argument("--infer-frames", type=int, default=12)
    parser.add_argument("--infer-batch", type=int, default=4)
    parser.add_argument("--infer-repeat", type=int, default=3)
    parser.add_argument("--infer-sequences", default=None,
                        help="comma-separated sequences for the inference guard (default: the first "
                             "of --sequences; 'all': every one of them)")
    parser.add_argument("--infer-tune-on", default="int8", choices=["eager", "compiled", "int8"],
                        help="the frozen prefix the inference comparison's networks are fine-tuned with")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep inductor's on-disk cache (default: a fresh one, so compile times "
                             "are a new machine's)")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--end-to-end", action="store_true",
                        help="only seconds per sequence (fine-tuning + inference): the reference "
                             "setting against the online defaults at 480p and --recipe-scale")
    parser.add_argument("--recipe-scale", type=float, default=0.3,
                        help="data.scale of the cpu recipe (experiments/common.sh)")
    parser.add_argument("--amortise", type=int, default=10,
                        help="sequences the prefix set-up is shared by (a DAVIS val run: 10... 20)")
    parser.add_argument("--inference-only", action="store_true",
                        help="only the 480p inference comparison (one fast fine-tuning for its weights)")
    parser.add_argument("--override", action="append", default=[],
                        help="a config override for every run, after the preset's (smoke runs: "
                             "--override online.iterations=2 --override data.scale=0.25)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=0, help="data.num_workers of every run")
    parser.add_argument("--out", type=Path,
                        default=REPO / f"benchmarks/results/oneshot-{socket.gethostname()}.json")
    parser.add_argument("--plot", type=Path, default=None, help="PNG (default: beside --out)")
    args = parser.parse_args()
    args.budgets = [int(b) for b in args.budgets.split(",") if b]
    if args.sequences is None:
        from osvos_pl.data.davis import DAVISIndex

        args.sequences = DAVISIndex(args.root).split("val")
    else:
        args.sequences = args.sequences.split(",")
    if args.infer_sequences == "all":
        args.infer_sequences = list(args.sequences)
    elif args.infer_sequences:
        args.infer_sequences = args.infer_sequences.split(",")
    args.plot = args.plot or args.out.with_suffix(".png")
    return args


def main() -> None:
    args = parse_args()
    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-cold-")
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = Bench(args)
    info = machine()
    bench.log(f"{info['lscpu'].get('Model name', '?')}, {info['cpu_count']} CPUs, torch "
              f"{info['torch']} ({info['torch_threads']} threads), bf16 native: "
              f"{info['bf16_native']}, load {info['load_average_at_start']}")
    t0 = time.perf_counter()
    if args.inference_only or args.end_to_end:
        result = ({"inference_480p": bench.inference()} if args.inference_only
                  else {"end_to_end": bench.end_to_end()})
        info["load_average_at_end"] = os.getloadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": info, **result,
                                        "total_seconds": time.perf_counter() - t0}, indent=1))
        bench.log(f"wrote {args.out}")
        return
    bench.run_sequences(args.out.with_suffix(".partial.jsonl"))
    inference = None if args.skip_inference else bench.inference()
    summary = summarise(bench.runs)
    info["load_average_at_end"] = os.getloadavg()
    result = {"machine": info, "args": {k: str(v) if isinstance(v, Path) else v
                                        for k, v in vars(args).items()},
              "summary": summary, "inference_480p": inference, "runs": bench.runs,
              "total_seconds": time.perf_counter() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(summary, args.plot, f"{info['lscpu'].get('Model name', '?')} ({info['cpu_count']} CPUs, "
         f"shared), {', '.join(args.sequences)}")
    for start, settings in summary.items():
        for name, row in settings.items():
            ratio = row.get("time_ratio_to_reference")
            bench.log(f"{start:8s} {name:14s} J&F {row['JF']:.3f}  fine-tuning "
                      f"{row['finetune_seconds']:7.1f} s"
                      + (f"  ({1 / ratio:.1f}x faster than reference)" if ratio else ""))
    bench.log(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
