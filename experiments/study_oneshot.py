"""Dump what one-shot fine-tuning and the parent each say about every frame, for a study of how
to combine them (issue: one-shot that keeps what the parent found).

For each sequence of the config's ``data.sequences`` (a dev split inside DAVIS *train*): the
parent's and the fine-tuned copy's foreground probabilities of every frame at native size
(uint8, x255), plus the ground truth, into ``OUT/<sequence>.npz``; then ``--rules`` scores
combinations of the two offline (no network runs twice for a rule).

    python experiments/study_oneshot.py OUT [hydra overrides of +experiment=online_bs ...]
    python experiments/study_oneshot.py OUT --score [--rules ...]

With ``+study.flip=1`` the dump also holds both networks' maps of each mirrored frame (mapped
back); a rule ``flip+RULE`` scores RULE on the means, as ``online.test_flip`` makes them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def dump(out: Path, overrides: list[str]) -> None:
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from osvos_pl.runner.config import config_dir
    from osvos_pl.stages.assembly import build_datamodule, build_engine, follow_weights
    from osvos_pl.stages.online import annotated_frames
    from osvos_pl.stages.parent_network import parent_network
    from osvos_pl.tasks.segmenter import shared_stages

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=online_bs", "logger=none", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(cfg.get("num_threads") or torch.get_num_threads()))
    dm = build_datamodule(cfg)
    names = dm.eval_names()
    parent, norm = parent_network(cfg)
    follow_weights(cfg, dm, norm)
    engine = build_engine(cfg, out)
    seg = instantiate(cfg.task, parent=parent, engine=engine, contours=None, progress=False,
                      callbacks=[], prefix_images=lambda: annotated_frames(dm, names[:10]))
    timing = {}
    for name in names:
        import pytorch_lightning as pl

        pl.seed_everything(int(cfg.seed), verbose=False)
        ft = seg.finetuning
        ds = {1: instantiate(cfg.online.first_frames).of(dm, name, ft.samples,
                                                         seed=int(cfg.seed))}
        nets, ft_s = seg.finetune(ds, name)
        net = nets[1]
        nets_all = [net, parent]
        for m in nets_all:
            m.eval().to(engine.device)
        shared = shared_stages(nets_all)
        prefix = seg.frozen_prefix
        probs, gts = [], []
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in dm.sequence_dataloader(name):
                image = batch["image"].to(engine.device)
                native = tuple(int(v) for v in batch["native_hw"][0])
                p = seg.object_probabilities(nets_all, image, native, shared, prefix)
                if "flip" in cfg.get("study", {}):
                    pf = seg.object_probabilities(nets_all, image.flip(-1), native, shared, prefix)
                    p = np.concatenate([p, pf[..., ::-1]])
                for b in range(p.shape[1]):
                    probs.append(np.round(p[:, b] * 255).astype(np.uint8))
                    gts.append(batch["labels"][b].numpy())
        timing[name] = {"finetune_s": ft_s, "inference_s": time.perf_counter() - start,
                        "frames": len(probs)}
        np.savez_compressed(out / f"{name}.npz", probs=np.stack(probs), gt=np.stack(gts) > 0)
        print(name, timing[name], flush=True)
    (out / "timing.json").write_text(json.dumps({"overrides": overrides, "timing": timing}, indent=1))


def components_keep(ft: np.ndarray, par: np.ndarray, overlap: float) -> np.ndarray:
    """The parent's connected components (8-connected) whose area the fine-tuned mask covers
    by at least ``overlap``, united with the fine-tuned mask."""
    import cv2

    n, lab = cv2.connectedComponents(par.astype(np.uint8), connectivity=8)
    if n <= 1:
        return ft
    area = np.bincount(lab.ravel(), minlength=n)
    hit = np.bincount(lab.ravel(), weights=ft.ravel().astype(np.float64), minlength=n)
    keep = hit / np.maximum(area, 1) >= overlap
    keep[0] = False
    return ft | keep[lab]


def follow(masks: np.ndarray, first: np.ndarray, grow: float, parts: bool) -> np.ndarray:
    """Each frame's mask kept near the previous frame's result (frame 0: its annotation
    ``first``). ``parts``: the product's rule (``online.near_previous``,
    ``osvos_pl.tasks.temporal.keep_near``: whole connected parts that reach within ``grow`` x
    sqrt(area) px of the previous mask); else the mask clipped to that neighbourhood."""
    import cv2

    from osvos_pl.tasks.temporal import keep_near

    out, previous = [], first.astype(np.uint8)
    for m in masks.astype(np.uint8):
        if parts:
            m = keep_near(m, previous, grow)
        elif previous.any():
            reach = max(1.0, grow * float(np.sqrt(previous.sum())))
            m = m * (cv2.distanceTransform(1 - previous, cv2.DIST_L2, 5) <= reach)
        out.append(m)
        previous = m
    return np.stack(out) > 0


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, 1e-3, 1 - 1e-3)
    return np.log(q / (1 - q))


def rule_masks(probs: np.ndarray, rule: str, first: np.ndarray | None = None) -> np.ndarray:
    """``(N, K, H, W)`` uint8 probabilities (K: fine-tuned, parent[, flips]) → ``(N, H, W)``;
    ``first`` the annotation of frame 0 (the rules that follow the object from it)."""
    p = probs.astype(np.float32) / 255
    if rule.startswith("flip+"):  # flip+RULE: RULE on the means with the mirrored frame's maps
        p = (p[:, :2] + p[:, 2:4]) / 2  # (what online.test_flip does before the blend)
        return rule_masks(np.round(p * 255).astype(np.uint8), rule[5:], first)
    ft, par = p[:, 0], p[:, 1]
    kind, *args = rule.split(":")
    a = [float(x) for x in args]
    if kind == "ft":
        return ft > (a[0] if a else 0.5)
    if kind == "parent":
        return par > (a[0] if a else 0.5)
    if kind == "blend":  # blend:w[:thr]
        return (1 - a[0]) * ft + a[0] * par > (a[1] if len(a) > 1 else 0.5)
    if kind in ("near", "parts"):  # near|parts:grow[:blend weight[:thr]]: follow() the blend's masks
        w, th = (a[1] if len(a) > 1 else 0.3), (a[2] if len(a) > 2 else 0.5)
        return follow((1 - w) * ft + w * par > th, first, a[0], kind == "parts")
    if kind == "flip":  # mean of the fine-tuned net on the frame and its mirror
        return (p[:, 0] + p[:, 2]) / 2 > 0.5
    if kind == "comp":  # comp:overlap[:parent threshold]
        th = a[1] if len(a) > 1 else 0.5
        return np.stack([components_keep(f > 0.5, q > th, a[0]) for f, q in zip(ft, par)])
    if kind == "logit":  # logit:w  (1-w) logit(ft) + w logit(parent) > 0
        return (1 - a[0]) * _logit(ft) + a[0] * _logit(par) > 0
    if kind == "geo":  # geometric mean
        return np.sqrt(ft * par) > (a[0] if a else 0.5)
    if kind == "fallback":  # parent where the fine-tuned mask keeps < a of the parent's area
        out = []
        for f, q in zip(ft > 0.5, par > 0.5):
            inter = (f & q).sum()
            out.append(q | f if q.sum() and inter / q.sum() < a[0] and inter > 0 else f)
        return np.stack(out)
    raise ValueError(rule)


def score(out: Path, rules: list[str]) -> None:
    from osvos_pl.metrics import evaluate_sequence

    files = sorted(out.glob("*.npz"))
    table = {}
    for f in files:
        d = np.load(f)
        gt = d["gt"].astype(np.uint8)
        for rule in rules:
            pred = rule_masks(d["probs"], rule, d["gt"][0]).astype(np.uint8)
            jf = evaluate_sequence(gt, pred, multi_object=False)[1]
            table.setdefault(rule, {})[f.stem] = (float(np.mean(jf["J"])), float(np.mean(jf["F"])))
    seqs = [f.stem for f in files]
    print("| rule | J&F | J | F | " + " | ".join(f"J {s}" for s in seqs) + " |")
    print("|---|" + "---:|" * (3 + len(seqs)))
    for rule, rows in table.items():
        j = np.mean([rows[s][0] for s in seqs])
        fm = np.mean([rows[s][1] for s in seqs])
        print(f"| {rule} | {(j + fm) / 2:.3f} | {j:.3f} | {fm:.3f} | "
              + " | ".join(f"{rows[s][0]:.3f}" for s in seqs) + " |")


DEFAULT_RULES = ["ft", "parent", "blend:0.3", "blend:0.5", "geo", "comp:0.1", "comp:0.3",
                 "comp:0.5", "fallback:0.3"]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--score", action="store_true")
    ap.add_argument("--rules", nargs="*", default=DEFAULT_RULES)
    args, rest = ap.parse_known_args()
    if args.score:
        score(args.out, args.rules)
    else:
        dump(args.out, rest)
        score(args.out, args.rules)
    sys.exit(0)
