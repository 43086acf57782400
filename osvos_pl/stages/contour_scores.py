"""Judging the contour branch: boundary F on held-back frames, against a Sobel baseline."""

from __future__ import annotations

import numpy as np
import torch

from osvos_pl.metrics.contour import contour_f, edges_f, sobel_edges
from osvos_pl.model.osvos import native_probabilities


@torch.inference_mode()
def evaluate_contours(net: torch.nn.Module, dm, names: list[str], device: torch.device) -> dict:
    """ODS boundary F of the contour branch and of Sobel-of-image on every annotated frame of
    ``names``, against the boundaries of the object masks (both at native size); where the
    data module trains on contour maps, also against those maps (above 0.5: "maps-F-ODS")."""
    net.eval().to(device)
    maps = getattr(dm, "contour_map_reader", None)
    probs, sobel, masks, edges = [], [], [], []
    for name in names:
        stems = dm.frame_names(name)
        for batch in dm.sequence_dataloader(name):  # each frame with its annotation, decoded once
            logits = net.forward_fused(batch["image"].to(device))
            p = native_probabilities(logits, tuple(int(v) for v in batch["native_hw"][0]))
            for b, (i, prob) in enumerate(zip(batch["frame"].tolist(), p.cpu().numpy())):
                if not bool(batch["has_label"][b]):
                    continue
                probs.append(prob)
                masks.append(batch["labels"][b].numpy() > 0)
                sobel.append(sobel_edges(batch["raw"][b].numpy()))
                if maps is not None:
                    edges.append(maps.get(name, stems[i]))
    ours, baseline = contour_f(probs, masks), contour_f(sobel, masks)
    out = {
        "F-ODS": ours["F"], "threshold": ours["threshold"],
        "Sobel-F-ODS": baseline["F"], "Sobel-threshold": baseline["threshold"],
        "frames": len(masks), "mean_probability": float(np.mean([p.mean() for p in probs])),
    }
    have = [k for k, e in enumerate(edges) if e is not None]
    if have:  # frames without a map (a detector's last frame) are left out of this score
        gts = [edges[k] > 0.5 for k in have]
        ours, baseline = edges_f([probs[k] for k in have], gts), edges_f([sobel[k] for k in have], gts)
        out.update({"maps-F-ODS": ours["F"], "maps-threshold": ours["threshold"],
                    "maps-Sobel-F-ODS": baseline["F"], "maps-frames": len(have)})
    return out
