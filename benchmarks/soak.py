"""Fault-injection soak: kill runs at random moments, resume them, compare with uninterrupted runs.

``python benchmarks/soak.py --kills 6 --out /tmp/soak [--seed 0] [--json soak.json]``

Two stages on the generated default dataset (``data.root=null``), each at tiny settings with
two data-loader workers: a short parent training (periodic checkpoints every step, validation
during training) and the online stage over three sequences (fine-tuned from the random backbone,
so that it does not depend on the parent; 4 updates at a constant lr 1e-3, which leave masks
neither empty nor full, about half foreground, where the warm-up + cosine default gave 98 %:
the summary reports the fraction). Each
stage is first run once uninterrupted (the reference). Then the same command is started into another output dir and stopped ``--kills`` times, each time by a signal to its
whole process group at a random moment — SIGKILL, SIGTERM (``timeout``, ``scancel``) or SIGINT
(Ctrl-C), in a shuffled rotation — and re-run into the same dir until it completes. The
finished run must equal the reference: the same optimizer step count, the same weights in
``checkpoints/last.ckpt`` and ``parent.ckpt``, byte-identical masks, the same J/F rows in
``metrics.json`` and ``sequences/*.json``, and no temporary file left. Each stop is checked
too: SIGTERM/SIGINT exit 143/130 with the resume hint and no traceback (or, landing before the
command installed its handlers or after it wrote its record, die of the signal; or, landing in
the last batch of the final validation, let the run finish), SIGKILL dies.

Prints a summary and exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

TINY = ["data.scale=0.5", "data.num_workers=2", "data.generated.frames=6",
        "data.generated.train_sequences=2", "data.generated.val_sequences=3",
        "model.weights=null", "num_threads=1", "logger=none", "trainer.enable_progress_bar=false",
        "seed=7"]
# learning rates high enough that a few updates from random weights give non-trivial masks
PARENT = ["+experiment=parent", "parent.updates=6", "parent.accumulate=2",
          "parent.checkpoint_every=1", "parent.val_every=4", "optim.optimizer.lr=1e-4"]
ONLINE = ["+experiment=online", "parent_ckpt=null", "online.iterations=4", "optim.finetune_lr=1e-3",
          "online.scheduler=null"]
KINDS = ("SIGKILL", "SIGTERM", "SIGINT")
EXIT = {"SIGTERM": 143, "SIGINT": 130}
#: How a stop may end: 143/130 with the resume hint; dead of the signal before the command had
#: installed its handlers (still importing) or after it had finished its work (shutting down);
#: finished with exit 0 and its record (the signal came during the final validation's last
#: batch, which Lightning completes); dead of SIGKILL.
FINE = ("checkpointed", "before-handlers", "after-finish", "finished", "killed")


@dataclass
class Stop:
    """One kill: when it landed and how the command ended."""

    kind: str
    after_s: float
    phase: str  # "start-up" (drawn before the first log line) | "work"
    returncode: int
    outcome: str  # one of FINE, or what was wrong
    run_dir: str


@dataclass
class StageReport:
    name: str
    stops: list[Stop] = field(default_factory=list)
    launches: int = 0
    rounds: int = 0
    differences: list[str] = field(default_factory=list)
    reference_s: float = 0.0
    startup_s: float = 0.0
    soak_s: float = 0.0


def command(args: list[str], run_dir: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "osvos_pl", *args, f"paths.cache_dir={cache}",
            f"hydra.run.dir={run_dir}"]


def environment() -> dict[str, str]:
    return {**os.environ, "HYDRA_FULL_ERROR": "1", "WANDB_MODE": "disabled",
            "NO_ALBUMENTATIONS_UPDATE": "1"}


def launch(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start ``cmd`` as the leader of a new process group (signals go to the whole group)."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, env=environment(),
                                start_new_session=True)


def wait_ready(proc: subprocess.Popen, log: Path, limit_s: float) -> bool:
    """Wait until the command logs its first line (imports done, handlers in) or ends."""
    deadline = time.monotonic() + limit_s
    while proc.poll() is None and time.monotonic() < deadline:
        if log.with_suffix(".out").stat().st_size > 0:
            return True
        time.sleep(0.05)
    return False


def run_reference(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` to the end: (seconds to its first log line, seconds in all)."""
    start = time.monotonic()
    proc = launch(cmd, log)
    wait_ready(proc, log, 1800)
    ready = time.monotonic() - start
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}; see {log}.err")
    return ready, time.monotonic() - start


def remaining(run_dir: Path, reference: Path) -> float:
    """The fraction of the reference's work a resumed run still has to do (roughly)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if (reference / "checkpoints").is_dir():
        if not last.is_file():
            return 1.0
        done = torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"]
        total = _state(reference / "checkpoints" / "last.ckpt")["global_step"]
        return 1 - done / total
    total = len(list((reference / "sequences").glob("*.json")))
    return 1 - len(list((run_dir / "sequences").glob("*.json"))) / total


def judge(kind: str, phase: str, code: int, stderr: str, finished: bool) -> str:
    """How a stopped command ended: fine, or what was wrong. ``finished``: the launch wrote
    ``metrics.json`` (its work was done before the signal came)."""
    problems = [t for t in ("Traceback", "DataLoader worker") if t in stderr]
    if kind == "SIGKILL":
        return "killed" if code == -signal.SIGKILL else f"exit {code} after SIGKILL"
    signum = getattr(signal, kind)
    if code == -signum and phase == "start-up":
        return "before-handlers"  # still importing: nothing of the run had started
    if code == -signum and finished:
        return "after-finish"  # outputs complete, the interpreter was shutting down
    if code == 0 and finished:
        return "finished"  # came during the last validation batch: the run completed
    if code != EXIT[kind]:
        return f"exit {code} after {kind}"
    if f"interrupted by {kind}" not in stderr or "hydra.run.dir=" not in stderr:
        return f"no resume hint after {kind}"
    return "checkpointed" if not problems else f"{', '.join(problems)} after {kind}"


def soak_stage(report: StageReport, args: list[str], kills: int, rng: random.Random,
               out: Path, cache: Path, reference: Path) -> None:
    """Start the stage, stop its process group at a random moment and re-run it into the same
    dir, until it finishes; compare with the reference. A run that finishes before its kill ends
    a round; rounds go on (each in a fresh dir) until ``kills`` stops have landed.

    The moment: one stop in five lands anywhere in the start-up (imports, before the command has
    its handlers); the others at a uniform moment of the work left (estimated from the
    reference's duration and the resumed run's progress).
    """
    start, kinds = time.monotonic(), []
    while len(report.stops) < kills:
        report.rounds += 1
        run_dir = out / f"soak-{report.name}-{report.rounds}"
        while True:
            if not kinds:
                kinds = rng.sample(KINDS, len(KINDS))
            kind = kinds[-1] if len(report.stops) < kills else None
            log = out / "logs" / f"{report.name}-{report.launches}"
            report.launches += 1
            left = remaining(run_dir, reference)
            work = report.reference_s - report.startup_s
            started, wall_start = time.monotonic(), time.time()
            proc = launch(command(args, run_dir, cache), log)
            if kind and rng.random() < 0.2:
                delay, phase = rng.uniform(0, report.startup_s), "start-up"
            else:
                wait_ready(proc, log, 1800)
                delay, phase = time.monotonic() - started + rng.uniform(0, work * max(left, 0.15)), "work"
            try:
                code = proc.wait(timeout=max(0.0, delay - (time.monotonic() - started))
                                 if kind else 1800)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, getattr(signal, kinds.pop()))
                code = proc.wait(timeout=600)
                _reap(proc.pid)
                record = run_dir / "metrics.json"
                finished = record.is_file() and record.stat().st_mtime >= wall_start
                outcome = judge(kind, phase, code, log.with_suffix(".err").read_text(), finished)
                report.stops.append(Stop(kind, round(delay, 1), phase, code, outcome, run_dir.name))
                if outcome not in FINE:
                    report.differences.append(f"{run_dir.name}: {kind} at {delay:.1f} s: "
                                              f"{outcome} (see {log}.err)")
                continue
            if code != 0:
                raise RuntimeError(f"{report.name}: {log}.err: exit {code}")
            break  # finished (before its kill, or the last launch)
        compare(reference, run_dir, report)
    report.soak_s = time.monotonic() - start


def _reap(pgid: int) -> None:
    """Wait until no process of the group is left (workers exit once their parent is gone)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def compare(ref: Path, soak: Path, report: StageReport) -> None:
    diff, where = report.differences, f"{soak.name}: "
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (ref, soak))
    for key in ("global", "sequences"):
        if a[key] != b[key]:
            diff.append(f"{where}metrics.json {key}: {a[key]} != {b[key]}")
    steps = [r.get("timing", {}).get("optimizer_steps") for r in (a, b)]
    if steps[0] != steps[1]:
        diff.append(f"{where}optimizer steps {steps[0]} != {steps[1]}")
    for name in ("checkpoints/last.ckpt", "parent.ckpt"):
        if not (ref / name).is_file():
            continue
        sa, sb = _state(ref / name), _state(soak / name)
        if sa.get("global_step") != sb.get("global_step"):
            diff.append(f"{where}{name}: global_step {sa.get('global_step')} != {sb.get('global_step')}")
        weights = [k for k in sa["state_dict"] if not torch.equal(sa["state_dict"][k],
                                                                  sb["state_dict"].get(k))]
        if weights:
            diff.append(f"{where}{name}: {len(weights)} tensors differ, e.g. {weights[0]}")
    ref_files = {p.relative_to(ref) for p in ref.rglob("*") if p.is_file()}
    soak_files = {p.relative_to(soak) for p in soak.rglob("*") if p.is_file()}
    for rel in sorted(p for p in ref_files if p.suffix == ".png"):
        if rel not in soak_files or (ref / rel).read_bytes() != (soak / rel).read_bytes():
            diff.append(f"{where}mask {rel} differs or is missing")
    for rel in sorted(p for p in ref_files if p.parts[0] == "sequences"):
        ra, rb = (json.loads((d / rel).read_text())["objects"] for d in (ref, soak))
        if ra != rb:
            diff.append(f"{where}{rel}: {ra} != {rb}")
    temporaries = [str(p) for p in soak_files if ".tmp" in p.name]
    if temporaries:
        diff.append(f"{where}temporaries left: {temporaries}")


def foreground(pngs: list[Path]) -> float:
    """Mean foreground fraction of the masks (0 or 1 would make byte-identity trivial)."""
    import numpy as np
    from PIL import Image

    return float(np.mean([np.mean(np.asarray(Image.open(p)) > 0) for p in pngs])) if pngs else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=6, help="stops per stage")
    parser.add_argument("--online-kills", type=int, default=None,
                        help="stops for the online stage (default: --kills)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments and kinds")
    parser.add_argument("--out", type=Path, required=True, help="work folder (created)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    out, rng, t0 = args.out.resolve(), random.Random(args.seed), time.monotonic()
    logs, cache = out / "logs", out / "cache"
    logs.mkdir(parents=True, exist_ok=True)
    reports = []
    stages = [("parent", PARENT, args.kills),
              ("online", ONLINE, args.kills if args.online_kills is None else args.online_kills)]
    for name, stage_args, kills in stages:
        report = StageReport(name)
        ref, stage_args = out / f"reference-{name}", [*stage_args, *TINY]
        report.startup_s, report.reference_s = run_reference(command(stage_args, ref, cache),
                                                             logs / f"{name}-reference")
        soak_stage(report, stage_args, kills, rng, out, cache, ref)
        reports.append(report)
    pngs = sorted((out / "reference-online" / "predictions").rglob("*.png"))
    summary = {
        "kills_per_stage": args.kills, "seed": args.seed,
        "wall_seconds": round(time.monotonic() - t0, 1),
        "online_masks": len(pngs), "online_foreground_fraction": round(foreground(pngs), 4),
        "stages": [{
            "stage": r.name, "kills": len(r.stops),
            "by_kind": {k: sum(s.kind == k for s in r.stops) for k in KINDS},
            "outcomes": {o: sum(s.outcome == o for s in r.stops)
                         for o in sorted({s.outcome for s in r.stops})},
            "phases": {p: sum(s.phase == p for s in r.stops) for p in ("start-up", "work")},
            "launches": r.launches, "rounds": r.rounds, "resumes": r.launches - r.rounds,
            "reference_seconds": round(r.reference_s, 1), "startup_seconds": round(r.startup_s, 1),
            "soak_seconds": round(r.soak_s, 1),
            "reference_global": json.loads(
                (out / f"reference-{r.name}" / "metrics.json").read_text())["global"],
            "stops": [vars(s) for s in r.stops], "differences": r.differences,
        } for r in reports],
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 1 if any(r.differences for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
