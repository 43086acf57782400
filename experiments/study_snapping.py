"""Choose boundary snapping's settings on a dev split, without re-running the networks per setting.

``dump`` runs ``python -m osvos_pl`` (any snapping run: ``contour_ckpt=`` or ``contour_maps=``) and
keeps, for every frame, the objects' probabilities just before the snap and the frame's contour
map (``OUT/<sequence>.npz``, float16). ``score`` snaps those probabilities again under each
``--votes`` threshold (``online.snap_mask_threshold``) and ``--ucm`` level (``online.ucm_threshold``),
applies the run's ``online.threshold`` and ``online.near_previous`` as the product does, and
prints J/F per sequence and overall, with the unsnapped row (-BS) first. Single-object
sequences (DAVIS 2016) only.

    python experiments/study_snapping.py dump OUT +experiment=online contour_ckpt=C ...
    python experiments/study_snapping.py score OUT ANNOTATIONS [--votes 0.478,0.65]
        [--ucm 0.29] [--threshold 0.65] [--near-previous 0.25]
"""

from __future__ import annotations

import argparse
import atexit
import sys
import time
from pathlib import Path

import numpy as np


def dump(out: Path, overrides: list[str]) -> None:
    """Run the online stage with a hook on the segmenter's snap: every frame's (K, H, W)
    probabilities and (H, W) contour map are kept, and the snap itself still runs."""
    import osvos_pl.tasks.segmenter as segmenter
    from osvos_pl.__main__ import main

    out.mkdir(parents=True, exist_ok=True)
    frames: dict[str, list] = {"probs": [], "edges": []}
    current: dict[str, str | None] = {"sequence": None}

    def flush() -> None:
        if current["sequence"] is not None and frames["probs"]:
            np.savez_compressed(out / f"{current['sequence']}.npz",
                                probs=np.stack(frames["probs"]).astype(np.float16),
                                edges=np.stack(frames["edges"]).astype(np.float16))
        frames["probs"], frames["edges"] = [], []

    segment, snap_objects = segmenter.OneShotSegmenter.segment, segmenter.snap_objects

    def segment_and_keep(self, nets, batches, sequence="", foreground=None):
        flush()
        current["sequence"] = sequence
        yield from segment(self, nets, batches, sequence, foreground)

    def snap_and_keep(probs, edges, *args, **kwargs):
        frames["probs"].append(np.asarray(probs, np.float16))
        frames["edges"].append(np.asarray(edges, np.float16))
        return snap_objects(probs, edges, *args, **kwargs)

    segmenter.OneShotSegmenter.segment = segment_and_keep
    segmenter.snap_objects = snap_and_keep
    atexit.register(flush)
    sys.argv = ["osvos_pl", *overrides]
    main()


def score(out: Path, annotations: Path, votes: list[float], ucm: float, threshold: float,
          near_previous: float | None) -> dict:
    """J and F means per sequence and vote threshold (None: unsnapped); prints the table."""
    from PIL import Image

    from osvos_pl.metrics import evaluate_sequence
    from osvos_pl.snapping import snap_to_regions, superpixels
    from osvos_pl.tasks.temporal import follower

    rows: dict[str, dict] = {}
    for path in sorted(out.glob("*.npz")):
        name = path.stem
        data = np.load(path)
        probs, edges = data["probs"].astype(np.float32), data["edges"].astype(np.float32)
        truth = sorted((annotations / name).glob("*.png"))[: len(probs)]
        gt = np.stack([np.array(Image.open(p)) > 0 for p in truth]).astype(np.uint8)
        start = time.perf_counter()
        regions = [superpixels(e, ucm) for e in edges]
        seconds = (time.perf_counter() - start) / len(edges)
        rows[name] = {}
        for vote in [None, *votes]:
            follow, pred = follower(near_previous), []
            for p, r in zip(probs, regions):
                if vote is not None:
                    p, _ = snap_to_regions(p, r, vote, threshold)
                pred.append(follow((p.max(0) > threshold).astype(np.uint8)))
            (jf,) = evaluate_sequence(gt, np.stack(pred), multi_object=False).values()
            rows[name][vote] = (float(np.mean(jf["J"])), float(np.mean(jf["F"])))
        count = np.mean([r.max() + 1 for r in regions])
        print(f"{name}: {count:.0f} superpixels per frame, {seconds:.3f} s per frame; "
              + "; ".join(f"vote {v}: J {j:.3f} F {f:.3f}" for v, (j, f) in rows[name].items()),
              flush=True)
    for vote in [None, *votes]:
        j = np.mean([r[vote][0] for r in rows.values()])
        f = np.mean([r[vote][1] for r in rows.values()])
        print(f"ucm {ucm} vote {vote if vote is not None else 'unsnapped'}: "
              f"J {j:.4f} F {f:.4f} J&F {(j + f) / 2:.4f}")
    return rows


def main_cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "dump":
        if len(sys.argv) < 3:
            sys.exit("usage: study_snapping.py dump OUT [hydra overrides ...]")
        dump(Path(sys.argv[2]), sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["score"])
    ap.add_argument("out", type=Path)
    ap.add_argument("annotations", type=Path, help="DAVIS Annotations/<resolution> folder")
    ap.add_argument("--votes", default="0.4784", help="comma-separated vote thresholds")
    ap.add_argument("--ucm", type=float, default=0.29)
    ap.add_argument("--threshold", type=float, default=0.65)
    ap.add_argument("--near-previous", type=float, default=0.25, help="<= 0: off")
    a = ap.parse_args()
    score(a.out, a.annotations, [float(v) for v in a.votes.split(",")], a.ucm, a.threshold,
          a.near_previous if a.near_previous > 0 else None)


if __name__ == "__main__":
    main_cli()
