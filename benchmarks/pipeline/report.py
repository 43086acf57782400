"""Turning the measured rows into ratios, a summary against the targets, and printed tables."""

from __future__ import annotations

from collections.abc import Callable

from .variants import ONLINE_ITERATIONS, REFERENCE, TARGETS, scaled_hw


def cost(row: dict) -> float:
    """What a variant is judged by: ms per frame; for fine-tuning, the seconds to 500 updates."""
    if row["section"] == "finetune":
        return row[f"seconds_to_{ONLINE_ITERATIONS}"]
    return row["ms_per_frame"]


def _reference(results: list[dict], row: dict) -> float | None:
    if row["section"] == "data":
        return None
    refs = [cost(r) for r in results if r["section"] == row["section"]
            and r["size"] == row["size"] and r["variant"] == REFERENCE.name and r["batch"] == 1]
    return refs[0] if refs else None


def add_ratios(results: list[dict], flops: dict, peak: dict) -> None:
    """Each row's speed-up over the reference, its GFLOP/s and its fraction of the dtype's peak."""
    for row in results:
        ref = _reference(results, row)
        row["speedup"] = (ref / cost(row)) if ref else None
        row_flops = flops.get(row["size"], {}).get(row["section"])
        if row_flops:
            row["gflops"] = row_flops / (row["ms_per_frame"] / 1000) / 1e9
            row["fraction_of_peak"] = row["gflops"] / peak[row["dtype"]] if peak else None


def _data_summary(results: list[dict], size: str, train: dict) -> dict | None:
    """The loader's frames/s against the best training step's (headroom > 1: not the bottleneck)."""
    data = {r["workers"]: r for r in results if r["section"] == "data" and r["size"] == size}
    if not data:
        return None
    train_fps = 1000 / train["ms_per_frame"]
    entry = {
        "frames_per_s_2_workers": data.get(2, {}).get("frames_per_s"),
        "frames_per_s_0_workers": data.get(0, {}).get("frames_per_s"),
        "train_frames_per_s": train_fps,
        "headroom": (data[2]["frames_per_s"] / train_fps) if 2 in data else None,
        # one core's share of a training step spent decoding/augmenting a frame
        "loader_cost_per_step": (train_fps / data[0]["frames_per_s"]) if 0 in data else None,
    }
    entry["bottleneck"] = (entry["headroom"] or 0) < 1
    return entry


def summarize(results: list[dict], sizes: dict) -> dict:
    """Per size and section: the best variant, its speed-up and whether it meets the target."""
    out = {}
    for size in sizes:
        entry = {}
        for section, target in TARGETS.items():
            rows = [r for r in results if r["section"] == section and r["size"] == size]
            if not rows:
                continue
            best = min(rows, key=cost)
            entry[section] = {"best_variant": best["variant"], "batch": best["batch"],
                              "ms_per_frame": best["ms_per_frame"],
                              "speedup": best.get("speedup"), "target": target,
                              "met": (best.get("speedup") or 0) >= target}
            if section == "finetune":
                entry[section][f"seconds_to_{ONLINE_ITERATIONS}"] = cost(best)
        data = _data_summary(results, size, entry["train"]) if "train" in entry else None
        if data is not None:
            entry["data"] = data
        out[size] = entry
    return out


def _fmt(value, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def _row_line(r: dict) -> str:
    extra = ""
    if r["section"] == "finetune":
        extra = (f"{r['iterations_per_s']:.2f} it/s, "
                 f"{r[f'seconds_to_{ONLINE_ITERATIONS}']:.0f} s to {ONLINE_ITERATIONS}")
    elif r["section"] == "data":
        extra = f"{r['frames_per_s']:.1f} frames/s"
    elif r["variant"].endswith("+compile") and r.get("warmup_times"):
        extra = f"first call {r['warmup_times'][0]:.0f} s"
    pct = r.get("fraction_of_peak")
    speedup = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
    return (f"{r['section']:9s} {r['variant']:22s} {r['batch']:5d} "
            f"{r['ms_per_frame']:10.1f} {speedup:>7s} "
            f"{_fmt(r.get('gflops'), '8.1f'):>8s} "
            f"{_fmt(100 * pct if pct is not None else None, '6.1f'):>7s} "
            f"{_fmt(r.get('peak_rss_mb'), '7.0f'):>7s} "
            f"{_fmt(r.get('peak_gpu_mb'), '7.0f'):>7s}  {extra}")


def _summary_line(entry: dict) -> str:
    parts = []
    for section in TARGETS:
        if section in entry:
            e = entry[section]
            mark = "ok" if e["met"] else "MISSED"
            parts.append(f"{section} {e['speedup']:.2f}x ({e['best_variant']}, "
                         f"batch {e['batch']}; target {e['target']}x {mark})")
    if "data" in entry:
        d = entry["data"]
        parts.append(f"data {d['frames_per_s_2_workers']:.1f} fr/s = "
                     f"{d['headroom']:.1f}x the training step "
                     f"({'BOTTLENECK' if d['bottleneck'] else 'not the bottleneck'})")
    return "; ".join(parts)


def print_tables(log: Callable[[str], None], results: list[dict], sizes: dict, peak: dict,
                 summary: dict) -> None:
    """A table per size (every row, with its ratios), then the summary line per size."""
    if peak:
        log("\npeak GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    header = (f"{'section':9s} {'variant':22s} {'batch':>5s} {'ms/frame':>10s} {'x fp32':>7s} "
              f"{'GFLOP/s':>8s} {'% peak':>7s} {'RSS MB':>7s} {'GPU MB':>7s}  extra")
    for size in sizes:
        rows = [r for r in results if r["size"] == size]
        if not rows:
            continue
        hw = scaled_hw(sizes[size])
        log(f"\n{size} ({hw[0]}x{hw[1]})\n{header}\n{'-' * len(header)}")
        for r in rows:
            log(_row_line(r))
    log("\nsummary (best variant against the fp32 eager reference at batch 1):")
    for size, entry in summary.items():
        log(f"  {size}: " + _summary_line(entry))
