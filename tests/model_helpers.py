"""Models built from the recorded fixtures, and mask comparison, shared by the CPU, GPU and interpreter tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

# The idol_small_seed0 README's tolerances (original code vs itself: <= 1.5e-6).
OUTPUT_ATOL = {"pred_logits": 1e-4, "pred_boxes": 1e-5, "pred_inst_embed": 1e-4}


def small_detector(root: Path):
    """The ``idol_small_seed0`` detector: built from its embedded detectron2 cfg, loaded from its weights.pth
    (original key names), in eval mode on CPU."""
    from uvosam.tracker.checkpoint import load_idol_checkpoint
    from uvosam.tracker.detector import IDOLDetector
    from uvosam.tracker.yaml_config import parse_tracker_yaml

    yaml_text = json.loads((root / "config.json").read_text())["detectron2_cfg_yaml"]
    model = IDOLDetector(parse_tracker_yaml(yaml_text).detector).eval()
    load_idol_checkpoint(model, root / "weights.pth")
    return model


def idol_cli_inputs(root: Path, folder: Path, num_frames: int | None = None) -> tuple[Path, Path]:
    """The ``idol_small_seed0`` fixture at ``root`` as a command line takes it: its embedded detectron2 cfg written
    to ``folder/idol_small.yaml``, its first ``num_frames`` frames (default: all) as PNGs in ``folder/clip``.
    Returns (YAML path, frame folder)."""
    from PIL import Image

    yaml_path = folder / "idol_small.yaml"
    yaml_path.write_text(json.loads((root / "config.json").read_text())["detectron2_cfg_yaml"])
    frames = folder / "clip"
    frames.mkdir()
    for i, frame in enumerate(np.load(root / "frames.npy")[:num_frames]):
        Image.fromarray(frame).save(frames / f"{i:05d}.png")
    return yaml_path, frames


def msda_module_and_data(fixtures_dir: Path):
    """The recorded ``MSDeformAttn`` module (d_model 32, 3 levels, 4 heads, 2 points) with its weights, and its
    recorded inputs/outputs ``{name: tensor}`` (the ``M__`` entries of ms_deform_attn/deform_attn.npz)."""
    from uvosam.tracker.deform_attn import MSDeformAttn

    data = np.load(fixtures_dir / "ms_deform_attn" / "deform_attn.npz")
    module = MSDeformAttn(d_model=32, n_levels=3, n_heads=4, n_points=2)
    prefix = "M__module."
    state = {
        k[len(prefix) :]: torch.from_numpy(data[k]) for k in data.files if k.startswith(prefix)
    }
    module.load_state_dict(state, strict=True)
    return module, {k[3:]: torch.from_numpy(data[k]) for k in data.files if k.startswith("M__")}


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) IoU of the (N, H, W) bool masks a[i] and b[i] (0 where both are empty)."""
    return (a & b).sum((1, 2)) / np.maximum((a | b).sum((1, 2)), 1)


# The fast path's tolerance as the docs give it (docs/mask_models.md, uvosam/segmenter.py): per mask, the pixels that
# differ from the float32 mask are at most FAST_DIFF_OF_FRAME of the frame's; a mask of at least FAST_LARGE_OF_FRAME
# of the frame keeps IoU >= 0.99 (a small one does not: a few pixels are much of it).
FAST_DIFF_OF_FRAME = 0.005
FAST_LARGE_OF_FRAME = 0.2


def check_fast_path_tolerance(slow, fast) -> None:
    """``fast``'s masks (the bf16 fast path) within the documented tolerance of ``slow``'s (float32), on 4 frames of
    160x90 with 9 boxes of 3 to 80 px each, overlapping masks made disjoint (the pipeline's default): masks from a
    pixel to most of the frame. Checks that both small (< 1% of the frame) and large masks are there, and that the
    fast path really ran in bf16 (not every mask equal)."""
    from uvosam.testing import moving_shapes

    height, width = 90, 160
    frame_px = height * width
    clip = moving_shapes(num_frames=4, height=height, width=width, num_objects=4, seed=3)
    areas, differ, ious = [], [], []
    for t, frame in enumerate(clip.frames):
        rng = np.random.default_rng(t)
        boxes = []
        for side in (3, 5, 8, 12, 20, 30, 45, 60, 80):
            x0, y0 = rng.uniform(0, width - side), rng.uniform(0, height - min(side, height - 1))
            boxes.append((x0, y0, min(width, x0 + side), min(height, y0 + side)))
        boxes = np.array(boxes, np.float32)
        ref, got = slow.segment(frame, boxes).masks, fast.segment(frame, boxes).masks
        areas += list(ref.sum((1, 2)))
        differ += list((ref ^ got).sum((1, 2)))
        ious += list(mask_iou(ref, got))
    areas, differ, ious = np.array(areas), np.array(differ), np.array(ious)
    large = areas >= FAST_LARGE_OF_FRAME * frame_px
    assert large.any() and ((areas > 0) & (areas < 0.01 * frame_px)).any(), areas
    assert differ.any()  # it really ran in bf16
    assert differ.max() <= FAST_DIFF_OF_FRAME * frame_px, differ.max() / frame_px
    assert ious[large].min() >= 0.99, ious[large].min()


def use_tiny_sam2_checkpoints(folder: Path, monkeypatch) -> Path:
    """``$UVOSAM_CHECKPOINTS`` = ``folder`` (created) holding a tiny SAM 2.1 under the released tiny file name, and
    SAM 2.1 models built at tiny size: ``sam2.1_tiny`` then loads by name through the real loader. Returns
    ``folder``."""
    from uvosam import sam2_segmenter, weight_table
    from uvosam.testing import tiny_sam2, tiny_sam2_overrides

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"model": tiny_sam2().state_dict()}, folder / weight_table.WEIGHTS["sam2.1_tiny"].basename
    )
    build = sam2_segmenter.build_sam2_model
    monkeypatch.setattr(sam2_segmenter, "build_sam2_model", lambda model_type, overrides=(): build(
        model_type, tiny_sam2_overrides()))  # fmt: skip
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(folder))
    return folder


def use_tiny_tracker(folder: Path, monkeypatch, preset: str = "idol-ytvis19-r50") -> None:
    """The tiny random IDOL as the tracker of every load (``loading.load_tracker``), and a stand-in file under
    ``preset``'s released name in ``folder`` (``$UVOSAM_CHECKPOINTS``), since ``UVOSAM.from_pretrained`` finds both
    weight files before it loads either model (``uvosam.pipeline.locate_weights``)."""
    from uvosam import weight_table
    from uvosam.testing import tiny_idol_tracker
    from uvosam.tracker import loading

    folder.mkdir(parents=True, exist_ok=True)
    (folder / weight_table.WEIGHTS[preset].basename).write_bytes(
        b"stands in: load_tracker is replaced"
    )
    monkeypatch.setattr(loading, "load_tracker", lambda *a, **k: tiny_idol_tracker())
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(folder))


def with_random_rel_pos(encoder, seed: int = 1):
    """SAM's ``ImageEncoderViT`` (eval mode) with its rel-pos tables random: SAM zero-inits them, and with a zero
    rel-pos bias a test of the bias passes whatever the bias does."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in encoder.blocks:
            for p in (block.attn.rel_pos_h, block.attn.rel_pos_w):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return encoder.eval()
