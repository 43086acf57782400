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
``+study.adapt_every=N +study.adapt_steps=S +study.adapt_lr=LR +study.adapt_pos=P
+study.adapt_far=D`` adapt the copy on later frames while dumping (:class:`Adaptation`, OnAVOS).
``--score --frames DATA/JPEGImages/<res>`` enables the rules that carry the previous frame
along optical flow (``flowp``, ``flowm``); ``--score --ensemble DIR ...`` scores the mean of the
copies in several dump folders (other seeds).
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
        study = cfg.get("study", {})
        adapt = Adaptation(net, parent, ds[1], seg, study) if "adapt_every" in study else None
        start = time.perf_counter()
        for batch in dm.sequence_dataloader(name):
            with torch.inference_mode():
                image = batch["image"].to(engine.device)
                native = tuple(int(v) for v in batch["native_hw"][0])
                p = seg.object_probabilities(nets_all, image, native, shared, prefix)
                if "flip" in study:
                    pf = seg.object_probabilities(nets_all, image.flip(-1), native, shared, prefix)
                    p = np.concatenate([p, pf[..., ::-1]])
            for b in range(p.shape[1]):
                probs.append(np.round(p[:, b] * 255).astype(np.uint8))
                gts.append(batch["labels"][b].numpy())
                if adapt is not None:
                    adapt.after(len(probs) - 1, image[b:b + 1].clone(), p[:, b])
        timing[name] = {"finetune_s": ft_s, "inference_s": time.perf_counter() - start,
                        "frames": len(probs),
                        "adapt_steps": adapt.steps_done if adapt is not None else 0}
        np.savez_compressed(out / f"{name}.npz", probs=np.stack(probs), gt=np.stack(gts) > 0)
        print(name, timing[name], flush=True)
    (out / "timing.json").write_text(json.dumps({"overrides": overrides, "timing": timing}, indent=1))


class Adaptation:
    """Online adaptation (OnAVOS, Voigtlaender & Leibe, BMVC 2017) for the study: every
    ``adapt_every``-th frame, ``adapt_steps`` Adam updates (lr ``adapt_lr``, L2-SP toward the
    parent as in fine-tuning) of the copy, alternating the frame's own pseudo-label and a view of
    the annotated frame. The pseudo-label, from the product's mask of the frame (flip mean,
    blend, threshold, ``keep_near``): object where that mask holds and the blended probability
    exceeds ``adapt_pos``, background farther than ``adapt_far`` x sqrt(area) px from the mask,
    the rest ignored (``adapt_pos`` > 1: background only); ``adapt_core`` = k > 0 keeps as object
    only the largest part of the mask eroded by k px. The frames after it are segmented by the
    adapted copy."""

    def __init__(self, net, parent, views, seg, study):
        import torch

        from osvos_pl.tasks.temporal import follower

        self.net, self.views, self.seg = net, views, seg
        self.every, self.n = int(study.adapt_every), int(study.adapt_steps)
        self.pos, self.far = float(study.adapt_pos), float(study.adapt_far)
        self.core = int(study.get("adapt_core", 0))
        self.weight, self.th = seg.parent_weight, seg.threshold
        self.follow = follower(seg.near_previous)  # the product's filter, its state across frames
        self.stages = seg.finetuning.frozen_stages
        self.l2sp = seg.finetuning.l2sp
        self.params = {n: q for n, q in net.named_parameters() if q.requires_grad}
        ref = dict(parent.named_parameters())
        self.anchor = {n: ref[n].detach().clone() for n in self.params}
        self.optimizer = torch.optim.Adam(self.params.values(), lr=float(study.adapt_lr))
        self.steps_done, self.rng = 0, np.random.default_rng(0)

    def _mask(self, p: np.ndarray):
        if p.shape[0] == 4:
            p = (p[:2] + p[2:]) / 2
        q = (1 - self.weight) * p[0] + self.weight * p[1]
        return q, self.follow((q > self.th).astype(np.uint8))

    def _loss(self, image, target, keep):
        import torch
        import torch.nn.functional as F

        prefix = self.seg.frozen_prefix or (lambda x: self.net.trunk_prefix(x, self.stages))
        with torch.no_grad():
            taps, x = prefix(image)
        with self.seg.engine.autocast():  # as fine-tuning runs (bf16 on a CPU that has it)
            logits = self.net.forward_fused_from(taps, x, self.stages, tuple(image.shape[-2:]))
        logits = logits.float()
        pos, kept = (target * keep).sum(), keep.sum().clamp(min=1)
        share = pos / kept if 0 < pos < kept else torch.tensor(0.5)  # one class: half weight
        w = torch.where(target > 0.5, 1 - share, share) * keep
        loss = (F.binary_cross_entropy_with_logits(logits, target, w, reduction="sum") / kept)
        return loss + self.l2sp * sum(((self.params[n] - a) ** 2).sum()
                                      for n, a in self.anchor.items())

    def after(self, t: int, image, p: np.ndarray) -> None:
        """Frame ``t`` (``(1, 3, h, w)`` network input ``image``, its dumped maps ``p``) was
        segmented: adapt the copy on it when it is an adaptation frame."""
        import cv2
        import torch
        from torch.utils.data import default_collate

        q, m = self._mask(p)
        if t == 0 or t % self.every or not m.any():
            return
        h, w = image.shape[-2:]
        reach = self.far * float(np.sqrt(m.sum()))
        far = cv2.distanceTransform((1 - m).astype(np.uint8), cv2.DIST_L2, 5) > reach
        pos = (m > 0) & (q > self.pos)
        if self.core:  # the largest part of the mask eroded by ``core`` px: no look-alike joined to it
            eroded = cv2.erode(m.astype(np.uint8), np.ones((2 * self.core + 1,) * 2, np.uint8))
            count, parts, stats, _ = cv2.connectedComponentsWithStats(eroded, connectivity=8)
            pos &= (parts == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))) if count > 1 else False

        def at_input(a: np.ndarray) -> torch.Tensor:  # (H, W) bool -> (1, 1, h, w) 0/1 float
            small = cv2.resize(a.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            return torch.from_numpy(small).float()[None, None]

        target, keep = at_input(pos), at_input(pos | far)
        self.net.train()
        with torch.enable_grad():
            for k in range(self.n):
                if k % 2:
                    view = default_collate([self.views[int(self.rng.integers(len(self.views)))]])
                    loss = self._loss(view["image"], view["mask"].float(),
                                      torch.ones_like(view["mask"]).float())
                else:
                    loss = self._loss(image, target, keep)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.steps_done += 1
        self.net.eval()


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


def backward_flows(frames: np.ndarray) -> list[np.ndarray | None]:
    """For each ``(N, H, W, 3)`` RGB frame, where each of its pixels was in the frame before
    (DIS optical flow, OpenCV's medium preset: ``(H, W, 2)`` px offsets); None for frame 0."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return [None] + [dis.calc(grey[t], grey[t - 1], None) for t in range(1, len(grey))]


def warped(previous: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``previous`` (``(H, W)`` float32) moved onto the next frame by its backward ``flow``."""
    import cv2

    h, w = previous.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(previous, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def propagate(q: np.ndarray, flows: list, a: float, grow: float, th: float,
              carry_mask: bool) -> np.ndarray:
    """Each frame's probability ``q[t]`` mixed with the previous frame's result moved along the
    optical flow: ``(1 - a) q[t] + a warp(r[t-1])``, then thresholded and kept near the
    previous mask (the product's ``follower``). ``carry_mask``: what is carried is the previous
    frame's final mask (after the filter), else its mixed probability. Frame 0: its own
    probability."""
    from osvos_pl.tasks.temporal import follower

    out, r, follow = [], None, follower(grow)
    for t, qt in enumerate(q):
        r = qt if r is None else (1 - a) * qt + a * warped(r, flows[t])
        m = follow((r > th).astype(np.uint8))
        out.append(m)
        if carry_mask:
            r = m.astype(np.float32)
    return np.stack(out) > 0


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, 1e-3, 1 - 1e-3)
    return np.log(q / (1 - q))


def rule_masks(probs: np.ndarray, rule: str, first: np.ndarray | None = None,
               flows: list | None = None) -> np.ndarray:
    """``(N, K, H, W)`` uint8 probabilities (K: fine-tuned, parent[, flips]) → ``(N, H, W)``;
    ``first`` the annotation of frame 0 (the rules that follow the object from it), ``flows``
    the frames' :func:`backward_flows` (the rules that carry the previous frame along them)."""
    p = probs.astype(np.float32) / 255
    if rule.startswith("flip+"):  # flip+RULE: RULE on the means with the mirrored frame's maps
        p = (p[:, :2] + p[:, 2:4]) / 2  # (what online.test_flip does before the blend)
        return rule_masks(np.round(p * 255).astype(np.uint8), rule[5:], first, flows)
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
    if kind in ("flowp", "flowm"):  # flowp|flowm:a:grow:blend weight:thr  (propagate())
        q = (1 - a[2]) * ft + a[2] * par
        return propagate(q, flows, a[0], a[1], a[3], kind == "flowm")
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


def sequence_frames(images: Path, name: str) -> np.ndarray:
    """``(N, H, W, 3)`` RGB frames of sequence ``name`` under a DAVIS ``JPEGImages/<res>``."""
    import cv2

    files = sorted((images / name).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no frames in {images / name}: --frames takes JPEGImages/<resolution>")
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


def score(out: Path, rules: list[str], images: Path | None = None,
          ensemble: list[Path] = ()) -> None:
    """The table of ``rules`` on the dumps in ``out``; with ``ensemble`` (other dump folders of
    the same sequences, e.g. other seeds), the copies' maps are the mean over the folders (the
    parent's are the same in each): an ensemble of fine-tuned copies."""
    from osvos_pl.metrics import evaluate_sequence

    files = sorted(out.glob("*.npz"))
    table = {}
    for f in files:
        d = dict(np.load(f))
        if ensemble:
            maps = [d["probs"].astype(np.float32)] + [
                np.load(e / f.name)["probs"].astype(np.float32) for e in ensemble]
            d["probs"] = np.round(np.mean(maps, axis=0)).astype(np.uint8)
        gt = d["gt"].astype(np.uint8)
        flows = None
        if any(r.split(":")[0].split("+")[-1].startswith("flow") for r in rules):
            if images is None:
                raise SystemExit("the flow rules need --frames JPEGImages/<resolution>")
            flows = backward_flows(sequence_frames(images, f.stem))
        for rule in rules:
            pred = rule_masks(d["probs"], rule, d["gt"][0], flows).astype(np.uint8)
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
    ap.add_argument("--frames", type=Path, help="the dataset's JPEGImages/<resolution> folder "
                    "(the rules flowp / flowm carry each frame's result along optical flow)")
    ap.add_argument("--ensemble", type=Path, nargs="*", default=[],
                    help="more dump folders of the same sequences: score the mean of the copies")
    args, rest = ap.parse_known_args()
    if args.score:
        score(args.out, args.rules, args.frames, args.ensemble)
    else:
        dump(args.out, rest)
        score(args.out, args.rules, args.frames)
    sys.exit(0)
