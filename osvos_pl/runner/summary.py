"""What a run says when it ends: where its outputs are, its score, and the command to run next."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

from osvos_pl.tasks.progress import duration
from osvos_pl.utils.display import shown

#: Overrides a next command inherits: the same data, the same network layout, the same machine.
CARRIED = ("data", "trainer", "num_threads", "logger", "paths", "model.upsample", "model.init",
           "model.channels_last")


def carried_overrides(overrides: Iterable[str]) -> list[str]:
    """The command line's overrides a next stage needs too (data, trainer, network layout)."""
    kept = []
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if any(key == c or key.startswith(c + ".") or key.startswith(c + "/") for c in CARRIED):
            kept.append(shlex.quote(item))
    return kept


def next_command(record: Mapping, output_dir: Path) -> str:
    """The command that takes this run's output further."""
    stage, artifacts = record.get("stage"), record.get("artifacts", {})
    carried = carried_overrides(record.get("overrides", []))
    if record.get("experiment") == "predict":
        return _predict_next(record, output_dir)
    if stage == "parent":
        ckpt = shlex.quote(shown(artifacts["checkpoint"]))
        return " ".join(["python -m osvos_pl +experiment=online", f"parent_ckpt={ckpt}", *carried])
    if stage == "contour":
        ckpt = shlex.quote(shown(artifacts["checkpoint"]))
        return " ".join(["python -m osvos_pl +experiment=online parent_ckpt=PARENT.ckpt",
                         f"contour_ckpt={ckpt}", *carried])
    return f"python -m osvos_pl.report {shlex.quote(shown(output_dir))}"


def clip_annotations(config: Mapping) -> Path | None:
    """The folder that holds predict's clip as ``<name>/NNNNN.png`` annotations, where the first
    mask lies in one (a DAVIS ``Annotations/480p/<seq>/00000.png`` beside more masks), else None."""
    data, mask = config.get("data") or {}, config.get("mask")
    name = data.get("name") or Path(str(config.get("input", ""))).expanduser().stem
    folder = Path(str(mask)).expanduser().parent if mask else None
    if folder is None or folder.name != name or len(list(folder.glob("*.png"))) < 2:
        return None
    return folder.parent


def _predict_next(record: Mapping, output_dir: Path) -> str:
    """predict's next step: score its masks where the clip's annotations are known, else look."""
    masks = shlex.quote(shown(record.get("artifacts", {}).get("predictions", output_dir / "masks")))
    gt = clip_annotations(record.get("config") or {})
    if gt is not None:
        return f"python -m osvos_pl.evaluate --pred {masks} --gt {shlex.quote(shown(gt))}"
    return (f"look at {shown(output_dir / 'overlay.mp4')} and {shown(output_dir / 'contact_sheet.png')}"
            f"; to score: python -m osvos_pl.evaluate --pred {masks} --gt GT_DIR, GT_DIR holding "
            "<name>/NNNNN.png annotations named like the masks")


def score_line(record: Mapping) -> str | None:
    """The global J/F row, each value with its name (or the contour branch's boundary F)."""
    row = record.get("global") or {}
    if row:
        objects = len(record.get("sequences") or {})
        values = " | ".join(f"{k} {v:.3f}" for k, v in row.items())
        return f"global J/F over {objects} object(s): {values}"
    contours = record.get("contours")
    if isinstance(contours, Mapping) and "F-ODS" in contours:
        line = (f"contour branch on {contours.get('frames', '?')} held-back frames: boundary "
                f"F-ODS {contours['F-ODS']:.3f} (Sobel of the image: "
                f"{contours.get('Sobel-F-ODS', float('nan')):.3f})")
        if "maps-F-ODS" in contours:
            line += (f"; against the contour maps: {contours['maps-F-ODS']:.3f} (Sobel: "
                     f"{contours['maps-Sobel-F-ODS']:.3f})")
        return line
    return None


def summary_lines(record: Mapping, output_dir: Path) -> list[str]:
    """A few lines: what ran and how long, the score, where everything is, what to run next."""
    artifacts, timing = record.get("artifacts", {}), record.get("timing", {})
    lines = [f"{record.get('experiment')} finished in {duration(timing.get('total_seconds', 0))}"]
    if "optimizer_steps" in timing:
        lines[0] += (f" ({timing['optimizer_steps']} updates, "
                     f"{timing.get('seconds_per_step', 0):.2f} s each)")
    score = score_line(record)
    if score:
        lines.append(score)
    if "checkpoint" in artifacts:
        lines.append(f"checkpoint: {shown(artifacts['checkpoint'])} (weights, for parent_ckpt= / "
                     f"contour_ckpt=); resumable: {shown(artifacts['last_checkpoint'])}")
    if "predictions" in artifacts:
        lines.append(f"predictions: {shown(artifacts['predictions'])}/<sequence>/NNNNN.png")
    lines.append(f"record: {shown(Path(output_dir) / 'metrics.json')}")
    if artifacts.get("wandb_run"):
        run_dir = shown(artifacts["wandb_run"])
        lines.append(f"W&B run: {run_dir} (offline; upload with: wandb sync {run_dir})"
                     if artifacts.get("wandb_mode") == "offline" else f"W&B run: {run_dir}")
    lines.append(f"next: {next_command(record, Path(output_dir))}")
    config = record.get("config") or {}
    if (record.get("stage") == "online" and record.get("experiment") != "predict"
            and (config.get("data") or {}).get("root", "") is None):
        lines.append(f"then, on real video: {REAL_VIDEO_NEXT}")
    return lines


#: Where the quick start leads once it has run on the generated data: a user's own video, with
#: the parent shipped in the package (no training, no download).
REAL_VIDEO_NEXT = ("python -m osvos_pl.predict input=VIDEO_OR_FRAME_FOLDER box=x0,y0,x1,y1 "
                   "(or mask=FIRST_MASK.png) — fine-tunes the shipped parent (parent_ckpt="
                   "davis2016, trained on DAVIS 2016) on your first frame")
