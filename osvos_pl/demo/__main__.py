"""``python -m osvos_pl.demo [port=7860] [key=value ...]`` — serve the browser demo.

Reads ``conf/demo.yaml`` (checked by the same preflight as every command: a misspelt key or a
missing extra is one line, exit 2), builds the page's objects — the GrabCut of predict's
config, the generated sequences, the timing — and serves it on ``host:port`` only: no share
link, no analytics, no CDN, so it runs on an offline machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from osvos_pl.runner.preflight import compose, preflight
from osvos_pl.utils.errors import ConfigError

USAGE = ("python -m osvos_pl.demo [host=127.0.0.1] [port=7860] [updates=50] "
         "['predict=[\"model.weights=/path/vgg16.pth\"]'] [key=value ...]")


def check_demo(cfg: DictConfig) -> None:
    """Gradio installed, a usable port and budget, predict's overrides composing."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError('the demo needs Gradio: pip install -e ".[demo]"') from None
    if not 0 <= int(cfg.port) <= 65535:
        raise ConfigError(f"port={cfg.port} is not a TCP port (0-65535)")
    if not 0 <= int(cfg.updates) <= int(cfg.max_updates):
        raise ConfigError(f"updates={cfg.updates} must be within 0..max_updates={cfg.max_updates}")
    if not 1 <= int(cfg.max_objects) <= 20:
        raise ConfigError(f"max_objects={cfg.max_objects} must be within 1..20")
    from osvos_pl.demo.session import predict_config

    predict_config(list(cfg.predict), Path(cfg.work_dir).expanduser() / "check")


def settings(cfg: DictConfig):
    """The page's objects from ``conf/demo.yaml``."""
    from glob import glob

    from hydra.utils import instantiate

    from osvos_pl.data.generated import ensure_generated
    from osvos_pl.demo.app import Settings
    from osvos_pl.demo.session import Timing, predict_config

    work_dir = Path(cfg.work_dir).expanduser()
    predict = predict_config(list(cfg.predict), work_dir / "check")
    parents = ([str(cfg.parent_ckpt)] if cfg.parent_ckpt else []) + sorted(glob(cfg.checkpoints))
    return Settings(work_dir=work_dir, generated_root=ensure_generated(cfg.cache_dir),
                    updates=int(cfg.updates), max_updates=int(cfg.max_updates),
                    max_objects=int(cfg.max_objects), parents=parents,
                    predict=list(cfg.predict), grabcut=instantiate(predict.grabcut),
                    timing=Timing(work_dir / "timing.json", **cfg.timing),
                    scale=float(predict.data.scale),
                    backbone=None if predict.model.weights is None else str(predict.model.weights))


def main(args: Sequence[str] | None = None) -> None:
    import logging

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before Gradio is imported
    args = list(sys.argv[1:] if args is None else args)
    if any(a in ("-h", "--help") for a in args):
        print(f"usage: {USAGE}\nevery key: conf/demo.yaml; predict's keys go in predict=[...]")
        return
    preflight("demo", USAGE, check_demo, args)
    cfg = compose("demo", args)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s] %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    import gradio as gr

    from osvos_pl.demo.app import build

    s = settings(cfg)
    s.work_dir.mkdir(parents=True, exist_ok=True)
    page = build(s)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=str(cfg.host), server_port=int(cfg.port), share=False,
                inbrowser=False, ssr_mode=False, mcp_server=False, pwa=False,
                allowed_paths=[str(s.work_dir)], footer_links=[],
                theme=gr.themes.Default(font=["sans-serif"], font_mono=["monospace"]))


if __name__ == "__main__":
    main()
