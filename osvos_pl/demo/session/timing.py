"""How long a run will take, said before it starts: rates per update and per frame, learnt from
the last run on this machine and kept in a small JSON file between sessions."""

from __future__ import annotations

import json
from pathlib import Path


class Timing:
    """Expected run time on this machine: seconds per update and per frame, per megapixel of
    input, measured by the last run (``path``, JSON) or, before any, ``prior`` (conf)."""

    def __init__(self, path: Path, update_seconds_per_megapixel: float,
                 frame_seconds_per_megapixel: float):
        self.path = Path(path)
        self.rates = {"update": float(update_seconds_per_megapixel),
                      "frame": float(frame_seconds_per_megapixel), "measured": None}
        if self.path.is_file():
            try:
                self.rates.update(json.loads(self.path.read_text()))
            except (OSError, ValueError):
                pass  # a broken file: the prior stands until the next run rewrites it

    def estimate(self, updates: int, objects: int, frames: int, megapixels: float) -> str:
        seconds = megapixels * (updates * max(1, objects) * self.rates["update"]
                                + frames * self.rates["frame"])
        from osvos_pl.tasks.progress import duration

        basis = (f"measured here by the last run ({self.rates['measured']})"
                 if self.rates["measured"] else "a rough guess until a run measures this machine")
        return (f"expected: about {duration(seconds)} for {updates} updates x "
                f"{max(1, objects)} object(s) and {frames} frames — {basis}")

    def learn(self, record: dict, updates: int, objects: int, megapixels: float) -> None:
        """Rates from a finished run's record (``timing.sequences.<name>``), saved for later."""
        for t in record.get("timing", {}).get("sequences", {}).values():
            if updates:
                self.rates["update"] = t["finetune_seconds"] / (updates * objects * megapixels)
            self.rates["frame"] = t["inference_seconds"] / (max(1, t["frames"]) * megapixels)
            self.rates["measured"] = (f"{t['finetune_seconds']:.0f} s fine-tuning, "
                                      f"{t['inference_ms_per_frame']:.0f} ms per frame")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.rates))
