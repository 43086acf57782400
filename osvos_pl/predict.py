"""``python -m osvos_pl.predict input=clip.mp4 mask=first.png [...]`` — segment your own video.

The online stage on a clip (``data=clip``: a video or frame folder plus annotated masks): one
model per object, masks in ``<output>/masks/<name>/NNNNN.png`` (DAVIS layout, so ``evaluate``
reads them), plus ``<output>/overlay.mp4`` and ``<output>/contact_sheet.png``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from osvos_pl.cli import exit_codes
from osvos_pl.config import config_dir
from osvos_pl.errors import DataError
from osvos_pl.overrides import check_command_line


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    from osvos_pl.data.frames import FrameSource
    from osvos_pl.run import log_summary, run
    from osvos_pl.visualize import OverlayVideo, contact_sheet, overlay, write_image

    output = Path(cfg.output)
    with exit_codes(on_sigterm=lambda: interrupted_message(output)):
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

        try:
            record = run(cfg, output, summary=False, predictions="masks", on_frame=show)
        except BaseException:
            with contextlib.suppress(Exception):  # closing must not mask the real error
                video.close(keep=False)  # no half-written overlay.mp4 left behind
            raise
        video.close(keep=bool(cfg.overlay_video))
        if not panels:
            raise DataError(f"no frames could be read from {cfg.input}")
        write_image(output / "contact_sheet.png", contact_sheet(panels))
    log_summary(record, output)


def interrupted_message(output: Path) -> str:
    return (f"interrupted by SIGTERM; every mask in {output / 'masks'} is complete, but the clip "
            f"is not finished. Run the same command again (output={output}) to fine-tune and "
            "segment it again")


if __name__ == "__main__":
    check_command_line("predict")
    main()
