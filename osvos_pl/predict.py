"""``python -m osvos_pl.predict input=clip.mp4 mask=first.png [...]`` — segment your own video.

The online stage on a clip (``data=clip``: a video or frame folder plus annotated masks): one
model per object, masks in ``<output>/masks/<name>/NNNNN.png`` (DAVIS layout, so ``evaluate``
reads them), plus ``overlay.mp4``, ``contact_sheet.png``, the run's log and config, all in
``output=``. Inputs are checked before anything is made (``osvos_pl.preflight``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from osvos_pl.cli import exit_codes
from osvos_pl.config import config_dir
from osvos_pl.preflight import check_predict, preflight

USAGE = ("python -m osvos_pl.predict input=VIDEO_OR_FRAME_FOLDER mask=FIRST_FRAME_MASK.png "
         "[parent_ckpt=CKPT] [output=DIR] [key=value ...] (--help lists every key)")


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    from osvos_pl.data.frames import FrameSource
    from osvos_pl.run import log_summary, run
    from osvos_pl.visualize import ClipPictures

    output = Path(cfg.output)
    with exit_codes(on_sigterm=lambda: interrupted_message(output)):
        source = FrameSource(cfg.input)
        with ClipPictures(output, source.fps, source.count or 1, int(cfg.contact_sheet_frames),
                          bool(cfg.overlay_video)) as pictures:
            record = run(cfg, output, summary=False, predictions="masks", on_frame=pictures)
    log_summary(record, output)


def interrupted_message(output: Path) -> str:
    return (f"interrupted by SIGTERM; every mask in {output / 'masks'} is complete, but the clip "
            f"is not finished. Run the same command again (output={output}) to fine-tune and "
            "segment it again")


if __name__ == "__main__":
    preflight("predict", USAGE, check_predict)
    main()
