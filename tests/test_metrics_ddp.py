"""``DavisJF`` under DDP: two CPU processes (gloo) each see half the frames, plus the duplicates
a DistributedSampler pads with; the synced ``compute()`` must equal one process seeing all."""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from osvos_pl.metrics import DavisJF

WORLD = 2


def synthetic_frames() -> list[tuple[np.ndarray, np.ndarray, int, int, int]]:
    """(pred, target, object id, frame, num_frames) for 2 objects of 7 and 6 frames, 48×64 blobs."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:48, :64]
    items = []
    for obj, length in ((4, 7), (9, 6)):
        for frame in range(length):
            cy, cx, r = 20 + frame, 25 + 2 * frame, 10 + obj % 3
            target = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            pred = np.roll(target, int(rng.integers(-3, 4)), axis=1) | (rng.random((48, 64)) < 0.01)
            items.append((pred, target, obj, frame, length))
    return items


def update(metric: DavisJF, items) -> None:
    for start in range(0, len(items), 3):
        pred, target, obj, frame, length = zip(*items[start : start + 3])
        metric.update(
            torch.from_numpy(np.stack(pred)), torch.from_numpy(np.stack(target)),
            torch.tensor(obj), torch.tensor(frame), torch.tensor(length),
        )


def sampler_order(n: int) -> list[int]:
    """A DistributedSampler's shuffled order, padded by repeating its start to a multiple of WORLD."""
    order = np.random.default_rng(0).permutation(n).tolist()
    total = -(-n // WORLD) * WORLD
    return order + order[: total - n]


def shard(items: list, rank: int) -> list:
    """What one rank sees: every WORLD-th sample of the padded order."""
    return [items[i] for i in sampler_order(len(items))[rank::WORLD]]


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        metric = DavisJF()
        update(metric, shard(synthetic_frames(), rank))
        result = metric.compute()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_synced_compute_equals_single_process(tmp_path):
    items = synthetic_frames()
    repeated = items[sampler_order(len(items))[-1]]
    assert len(items) % WORLD == 1 and 0 < repeated[3] < repeated[4] - 1  # a scored frame twice
    single = DavisJF()
    update(single, items)
    expected = json.loads(json.dumps(single.compute()))  # int keys become strings, as in workers

    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)

    for rank in range(WORLD):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result == expected, rank
    assert expected["objects"]["4"]["frames"] == 5 and expected["objects"]["9"]["frames"] == 4
    assert 0 < expected["global"]["J-Mean"] < 1
