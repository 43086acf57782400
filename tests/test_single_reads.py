"""The online stage decodes each frame and each annotation once per run: the check, the objects,
the fine-tuning views, the frame stream, scoring, overlays and W&B all share what was decoded.

Counted on the generated data, in process (``data.num_workers=0``), by wrapping the two
decoders wherever the package imported them. ``data.validate=full`` (the default) decodes every
file once more up front, on purpose: a corrupt file then fails the run before it writes
anything (tests/test_bad_input_cli.py); ``header`` reads only the sizes there.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from osvos_pl.data import io
from tests.helpers import compose_cfg

FAST = ["+experiment=online", "online.iterations=2", "logger=none", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "online.overlays=3", "online.prefix=eager"]


def _count_decodes(monkeypatch) -> Counter:
    """Every call of ``read_image`` / ``read_mask`` from any module of the package, by path."""
    counts: Counter = Counter()

    def counted(decode):
        def wrapper(path, *args, **kwargs):
            counts[Path(path).resolve()] += 1
            return decode(path, *args, **kwargs)
        return wrapper

    for decode in (io.read_image, io.read_mask):
        wrapped = counted(decode)
        for name, module in list(sys.modules.items()):
            if name.startswith("osvos_pl") and getattr(module, decode.__name__, None) is decode:
                monkeypatch.setattr(module, decode.__name__, wrapped)
    return counts


def _online(tmp_path: Path, monkeypatch, validate: str) -> tuple[dict, Counter]:
    from osvos_pl.runner.run import run  # every module imported before the decoders are wrapped
    from osvos_pl.stages.assembly import build_datamodule

    cfg = compose_cfg([*FAST, f"data.validate={validate}",
                       f"paths.cache_dir={tmp_path / 'cache'}"], tmp_path / "out")
    assert build_datamodule(cfg).eval_names()  # the generated data written before counting
    counts = _count_decodes(monkeypatch)
    return run(cfg, tmp_path / "out", summary=False), counts


def _split(counts: Counter) -> tuple[dict, dict]:
    frames = {p: n for p, n in counts.items() if p.suffix == ".jpg"}
    masks = {p: n for p, n in counts.items() if p.suffix == ".png"}
    return frames, masks


@pytest.mark.slow
def test_online_decodes_each_frame_and_annotation_once(tmp_path, monkeypatch):
    record, counts = _online(tmp_path, monkeypatch, "header")
    frames, masks = _split(counts)
    total = sum(t["frames"] for t in record["timing"]["sequences"].values())
    assert total > 0 and len(frames) == total, (len(frames), total)
    assert set(frames.values()) == {1}, {p.name: n for p, n in frames.items() if n != 1}
    assert len(masks) == total  # the generated val sequences annotate every frame (all scored)
    assert set(masks.values()) == {1}, {p.name: n for p, n in masks.items() if n != 1}
    overlays = list((tmp_path / "out" / "overlays").rglob("*.png"))
    assert len(overlays) == 3 * len(record["timing"]["sequences"])  # drawn from the stream


@pytest.mark.slow
def test_the_full_check_adds_one_decode_per_file_and_none_for_the_first_mask(tmp_path,
                                                                            monkeypatch):
    _, counts = _online(tmp_path, monkeypatch, "full")
    frames, masks = _split(counts)
    assert set(frames.values()) == {2}
    firsts = {p for p in masks if p.stem == "00000"}
    assert firsts and all(masks[p] == 1 for p in firsts)
    assert {masks[p] for p in masks if p not in firsts} == {2}
