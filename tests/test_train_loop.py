"""Training loop end to end on CPU: a toy tracker learns synthetic moving shapes; checkpoints load
as tracker weights; resuming continues the same schedule; two-process DDP (gloo)."""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from http_helpers import free_port
from train_helpers import synthetic_clip, synthetic_videos, track_metrics

from uvosam.tracker.checkpoint import load_idol_detector
from uvosam.tracker.config import DetectorConfig
from uvosam.train.config import TrainConfig
from uvosam.train.loop import train

# The TEST's schedule (not the product defaults): a toy detector, 64 px frames, a fast lr.
TOY_DETECTOR = dataclasses.replace(DetectorConfig.tiny(), num_queries=16, dec_layers=3)
TOY = TrainConfig.tiny().replace(
    detector=TOY_DETECTOR,
    clips_per_batch=4,
    max_iter=400,
    base_lr=2e-3,
    lr_steps=(320,),
    checkpoint_period=10**6,
    log_period=50,
)
HELD_OUT_SEEDS = range(1000, 1006)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ops: one intra-op thread is several times faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy_run")
    started = time.perf_counter()
    result = train(TOY, [synthetic_videos(32, num_frames=12)], [1.0], out, progress=False)
    print(f"toy training: {TOY.max_iter} iterations in {time.perf_counter() - started:.1f} s")
    return result


def idol_tracks(detector, frames: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
    """Per frame (track ids, pixel boxes) from IDOL's offline association."""
    from uvosam.tracker.postprocess import run_idol_offline

    trajectories = run_idol_offline(detector.detect_frames(frames), frames.shape[1:3])
    per_frame: list[tuple[list[int], list[np.ndarray]]] = [([], []) for _ in frames]
    for traj in trajectories:
        for t, box in enumerate(traj.boxes_xyxy):
            if box is not None:
                per_frame[t][0].append(traj.track_id)
                per_frame[t][1].append(box)
    return [(ids, np.array(boxes, np.float32).reshape(-1, 4)) for ids, boxes in per_frame]


@pytest.mark.slow
def test_toy_tracker_learns_to_track_synthetic_shapes(trained):
    detector = load_idol_detector(trained.checkpoint, TOY.detector)
    recalls, switches, false_pos = [], 0, 0
    for seed in HELD_OUT_SEEDS:
        frames, boxes = synthetic_clip(12, seed=seed)
        m = track_metrics(boxes, idol_tracks(detector, frames))
        recalls.append(m.recall)
        switches += m.id_switches
        false_pos += m.false_positives
    recall = float(np.mean(recalls))
    print(
        f"held-out recall@0.5 {recall:.3f}, id switches {switches}, false positives {false_pos} "
        f"({len(HELD_OUT_SEEDS)} clips x 12 frames x 2 objects)"
    )
    assert recall >= 0.9
    assert switches <= 2


@pytest.mark.slow
def test_training_checkpoint_is_a_tracker_checkpoint(trained):
    raw = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)
    assert raw["iteration"] == TOY.max_iter
    assert {"model", "optimizer", "scheduler", "train_config"} <= set(raw)
    assert all(k.startswith(("detr.detr.", "detr.reid_embed_head.")) for k in raw["model"])
    assert "detr.detr.transformer.decoder.bbox_embed.0.layers.2.weight" in raw["model"]
    loaded = load_idol_detector(trained.checkpoint, TOY.detector)
    frames, _ = synthetic_clip(3, seed=7)
    ours = trained.detector.eval().detect_frames(frames)
    theirs = loaded.detect_frames(frames)
    assert torch.equal(ours.logits, theirs.logits)
    assert torch.equal(ours.boxes_cxcywh_norm, theirs.boxes_cxcywh_norm)


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resumed_run_continues_the_same_schedule(tmp_path):
    cfg = TrainConfig.tiny().replace(
        clips_per_batch=2,
        max_iter=4,
        lr_steps=(3,),
        warmup_iters=2,
        log_period=1,
        checkpoint_period=2,
    )
    videos = [synthetic_videos(4, num_frames=8)]
    straight = train(cfg, videos, [1.0], tmp_path / "straight", progress=False)
    cut = train(cfg.replace(max_iter=3), videos, [1.0], tmp_path / "cut", progress=False)
    assert torch.load(cut.checkpoint, weights_only=True)["iteration"] == 3
    resumed = train(cfg, videos, [1.0], tmp_path / "cut", resume=True, progress=False)
    a, b = _rows(straight.losses_csv), _rows(resumed.losses_csv)
    assert [r["iteration"] for r in b] == ["1", "2", "3", "4"]
    assert [float(r["lr"]) for r in b] == [float(r["lr"]) for r in a]
    assert float(b[3]["lr"]) == pytest.approx(cfg.base_lr * cfg.lr_gamma)
    for ra, rb in zip(a, b, strict=True):
        assert float(rb["total_loss"]) == pytest.approx(float(ra["total_loss"]), rel=1e-5)
    assert resumed.last_losses == pytest.approx(straight.last_losses, rel=1e-5)


def test_fp16_loss_scale_is_saved_and_resumed(tmp_path, monkeypatch):
    """fp16 AMP (forced here on the CPU): the GradScaler's state travels with the checkpoint, so a
    resumed run keeps its loss scale instead of restarting at 2**16."""
    from uvosam.train import loop

    monkeypatch.setattr(loop, "amp_dtype", lambda mode, device: torch.float16)
    cfg = TrainConfig.tiny().replace(clips_per_batch=2, max_iter=1, log_period=1)
    videos = [synthetic_videos(2, num_frames=6)]
    first = train(cfg, videos, [1.0], tmp_path, progress=False, device="cpu")
    state = torch.load(first.checkpoint, weights_only=True)
    assert state["grad_scaler"]["scale"] > 0
    state["grad_scaler"]["scale"] = 8.0  # as if the scale had backed off during the run
    torch.save(state, first.checkpoint)
    resumed = train(
        cfg.replace(max_iter=2), videos, [1.0], tmp_path, resume=True, progress=False, device="cpu"
    )
    assert 0 < torch.load(resumed.checkpoint, weights_only=True)["grad_scaler"]["scale"] <= 8.0


def _ddp_worker(rank: int, out_dir: str, port: int) -> None:
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    cfg = TrainConfig.tiny().replace(
        clips_per_batch=2,
        max_iter=2,
        log_period=1,
        checkpoint_period=1,  # model_0000000.pth: step 1
    )
    result = train(
        cfg, [synthetic_videos(4, num_frames=8)], [1.0], out_dir, progress=False, device="cpu"
    )
    torch.save(result.detector.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_process_ddp_on_cpu(tmp_path):
    started = time.perf_counter()
    mp.spawn(_ddp_worker, args=(str(tmp_path), free_port()), nprocs=2, join=True)
    print(f"2-process DDP (gloo, 2 steps): {time.perf_counter() - started:.1f} s")
    assert (tmp_path / "model_final.pth").is_file()
    assert len(_rows(tmp_path / "losses.csv")) == 2
    s0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(s0[k], s1[k]) for k in s0)  # gradients were averaged across ranks
    init = load_idol_detector(tmp_path / "model_final.pth", DetectorConfig.tiny()).state_dict()
    assert all(torch.equal(init[k], s0[k]) for k in s0)
    # ... and the ranks are equal because both trained, not because neither did
    first = load_idol_detector(tmp_path / "model_0000000.pth", DetectorConfig.tiny()).state_dict()
    assert not all(torch.equal(first[k], s0[k]) for k in s0)


def test_a_failed_checkpoint_save_leaves_the_last_one_in_place(tmp_path, monkeypatch):
    """A save that fails midway (a full disk) leaves no partial file, and ``last_checkpoint`` still names the last
    complete checkpoint, so ``--resume`` restarts from it."""
    from uvosam.train import checkpointing

    model = torch.nn.Linear(2, 2)
    kw = {
        "model_state": model.state_dict(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
        "scheduler": {},
        "train_config": {},
    }
    first = checkpointing.save_checkpoint(tmp_path, "model_0000001.pth", iteration=1, **kw)

    def disk_full(payload, path):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpointing.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpointing.save_checkpoint(tmp_path, "model_0000002.pth", iteration=2, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth"]
    assert checkpointing.find_last_checkpoint(tmp_path) == first


def test_a_checkpoint_of_another_architecture_loads_as_a_tracker_without_a_yaml(tmp_path):
    """``uvosam track --weights`` / ``segment --tracker`` load a ``uvosam train`` checkpoint of any
    architecture (here the tiny preset): its ``train_config`` says which, and no detectron2 YAML
    exists for a preset or a flat training YAML."""
    from uvosam.tracker.loading import load_tracker
    from uvosam.train.build import build_optimizer, build_train_model
    from uvosam.train.checkpointing import save_checkpoint

    cfg = TrainConfig.tiny()
    model = build_train_model(cfg)
    path = save_checkpoint(
        tmp_path, "model_final.pth", model_state=model.state_dict(),
        optimizer=build_optimizer(model, cfg), scheduler={}, iteration=1,
        train_config=cfg.to_dict(),
    )  # fmt: skip
    tracker = load_tracker(path, None, "cpu", precision="bf16")
    assert tracker.detector.cfg == dataclasses.replace(cfg.detector, precision="bf16")
    loaded = tracker.detector.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_a_run_resumed_after_a_crash_logs_each_iteration_once(tmp_path, monkeypatch):
    """A run killed after its last checkpoint has logged iterations that the resumed run redoes: losses.csv keeps
    one row per iteration (the resumed run's), not both."""
    from uvosam.train import loop

    cfg = TrainConfig.tiny().replace(
        clips_per_batch=2, max_iter=5, log_period=1, checkpoint_period=2
    )
    videos = [synthetic_videos(4, num_frames=8)]
    step = loop._train_step

    def killed_at_3(run, clips, iteration):
        if iteration == 3:
            raise KeyboardInterrupt
        return step(run, clips, iteration)

    monkeypatch.setattr(loop, "_train_step", killed_at_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, videos, [1.0], tmp_path, progress=False)
    assert [r["iteration"] for r in _rows(tmp_path / "losses.csv")] == ["1", "2", "3"]
    monkeypatch.setattr(loop, "_train_step", step)
    train(cfg, videos, [1.0], tmp_path, resume=True, progress=False)  # from model_0000001 (2 steps)
    assert [r["iteration"] for r in _rows(tmp_path / "losses.csv")] == ["1", "2", "3", "4", "5"]


def test_a_failed_rewrite_of_the_loss_log_leaves_it_whole(tmp_path, monkeypatch):
    """keep_until rewrites losses.csv: a failure meanwhile (a full disk) keeps the old file, not a truncated one."""
    from uvosam.train.loop import LossLog

    path = tmp_path / "losses.csv"
    path.write_text("iteration,lr,total_loss\n1,0.1,2.0\n2,0.1,1.5\n")
    before = path.read_text()

    def disk_full(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", disk_full)
    with pytest.raises(OSError, match="No space"):
        LossLog(path, 1).keep_until(1)
    assert path.read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "losses.csv"
    ]


def test_data_loading_workers_are_capped_at_the_cpus_this_process_may_use(monkeypatch):
    """The release's 4 workers on a 2-CPU machine: torch warned "This DataLoader will create 4 worker processes ...
    suggested max 2" (a slow or frozen loader)."""
    import warnings

    from uvosam import cpu_quota
    from uvosam.train.loop import DistInfo, clip_loader

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    # no container quota, whatever this machine's: the two cores decide
    monkeypatch.setattr(cpu_quota, "cpu_quota", lambda root=None: None)
    cfg = TrainConfig.tiny().replace(num_workers=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = clip_loader([synthetic_videos(2, num_frames=4)], [1.0], cfg, DistInfo(), 0)
        assert len(next(batches)) == cfg.clips_per_batch
    assert batches._num_workers == 2
    assert not [w for w in caught if "worker processes" in str(w.message)]
    del batches  # its workers end with it
