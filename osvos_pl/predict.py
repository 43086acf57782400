"""``python -m osvos_pl.predict input=clip.mp4 mask=first.png [...]`` — segment your own video.

The online stage on a clip (``data=clip``: a video or frame folder plus annotated masks): one
model per object, masks in ``<output>/masks/<name>/NNNNN.png`` (DAVIS layout, so ``evaluate``
reads them), plus ``<output>/overlay.mp4`` and ``<output>/contact_sheet.png``.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from osvos_pl.cli import exit_codes
from osvos_pl.config import config_dir
from osvos_pl.errors import DataError


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    from osvos_pl.data.frames import FrameSource
    from osvos_pl.run import run
    from osvos_pl.visualize import OverlayVideo, contact_sheet, overlay, write_image

    output = Path(cfg.output)
    with exit_codes():
        source = FrameSource(cfg.input)
        n = source.count or 1
        sheet_at = set(np.linspace(0, n - 1, int(cfg.contact_sheet_frames)).round().astype(int))
        video, panels = OverlayVideo(output / "overlay.mp4", source.fps), []

        def show(name: str, item: dict, labels: np.ndarray) -> None:
            shown = overlay(item["raw"].numpy(), labels)
            if cfg.overlay_video:
                video.add(shown)
            if int(item["frame"]) in sheet_at:
                panels.append(shown)

        record = run(cfg, output, predictions="masks", on_frame=show)
        video.close(keep=bool(cfg.overlay_video))
        if not panels:
            raise DataError(f"no frames could be read from {cfg.input}")
        write_image(output / "contact_sheet.png", contact_sheet(panels))
    frames = sum(t["frames"] for t in record["timing"]["sequences"].values())
    print(f"wrote {frames} masks to {output / 'masks'}, {output / 'overlay.mp4'}, "
          f"{output / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
