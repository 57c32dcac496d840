"""benchmarks/e2e.py's comparison with a release-equivalent pipeline: the UVOSAM release's structure (SAM loaded
once, fp32, one ``set_image`` per frame, the whole video tracked before any mask, a ``[0,0,0,0]`` prompt for every
absent trajectory, a PNG per frame) on the same models and frames as uvosam's pipeline."""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np


def ours_frames_to_masks(pipe, video: Path, work: Path, limit: int | None = None) -> int:
    """uvosam's pipeline, frames -> masks (a PNG per frame); the SAM box prompts it made."""
    from PIL import Image

    from uvosam.video import iter_frames

    prompts = 0
    for result in pipe(iter_frames(video, max_frames=limit)):
        prompts += len(result)
        Image.fromarray(result.masks.any(0).astype(np.uint8)).save(work / "ours.png")
    return prompts


def release_frames_to_masks(
    pipe, predictor, video: Path, work: Path, limit: int | None = None
) -> int:
    """The release's structure on the same models: the whole video tracked first, then decoded again, one fp32
    ``set_image`` per frame and one prompt per trajectory on every frame (``[0,0,0,0]`` when absent); its prompts."""
    import torch
    from PIL import Image

    from uvosam.tracker.session import track_video
    from uvosam.video import iter_probed, probe

    # probed once, as our side's iter_frames probes it once: the two passes decode it without probing again
    info = probe(video, max_frames=limit)
    trajectories = track_video(
        pipe.tracker, iter_probed(info, max_frames=limit), height=info.height, width=info.width
    )
    prompts = 0
    for t, frame in enumerate(iter_probed(info, max_frames=limit)):
        predictor.set_image(frame)
        boxes = [
            tr.boxes_xyxy[t] if tr.boxes_xyxy[t] is not None else [0, 0, 0, 0]
            for tr in trajectories
        ]
        label = np.zeros(frame.shape[:2], np.uint8)
        prompts += len(boxes)
        if boxes:
            box_t = torch.tensor(boxes, dtype=torch.float32, device=predictor.device)
            box_t = predictor.transform.apply_boxes_torch(box_t, frame.shape[:2])
            masks, _, _ = predictor.predict_torch(None, None, boxes=box_t, multimask_output=False)
            for k, mask in enumerate(masks[:, 0].cpu().numpy()):
                label[mask] = k + 1
        Image.fromarray(label).save(work / "release.png")
    return prompts


def compare_release(pipe, video: Path, work: Path, sync, repeats: int = 3) -> dict:
    """Ours (frames -> masks) vs the release's structure, on the same models and frames: one untimed frame on each
    side first (first-call costs: the release side's fp32 SAM has not run yet), then ``repeats`` alternating pairs,
    ours first in each."""
    from segment_anything import SamPredictor

    model = pipe.segmenter.model
    if pipe.segmenter.matmul_weights_bf16:
        # ours keeps the encoder's matmul weights in bf16 (keep_matmul_weights_bf16, as from_pretrained): the release
        # ran float32, so it gets a float32 copy (the same random weights, rounded to bf16; only time is compared)
        model = copy.deepcopy(model).float()
    predictor = SamPredictor(model)
    ours_frames_to_masks(pipe, video, work, limit=1)
    release_frames_to_masks(pipe, predictor, video, work, limit=1)
    sync()
    ours, release = [], []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        ours_prompts = ours_frames_to_masks(pipe, video, work)
        sync()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        release_prompts = release_frames_to_masks(pipe, predictor, video, work)
        sync()
        release.append(time.perf_counter() - start)
    return {
        "ours_pipeline_s": statistics.median(ours),
        "release_equivalent_s": statistics.median(release),
        "ours_pipeline_runs_s": ours,
        "release_equivalent_runs_s": release,
        "ours_prompts": ours_prompts,
        "release_prompts": release_prompts,
    }


def release_lines(args: argparse.Namespace, short: dict) -> list[str]:
    """The speed-vs-release-equivalent lines (the release used SAM: with SAM 2.1 a line that says it was not run)."""
    if "release_equivalent_s" not in short:
        return [
            (
                f"speed vs release-equivalent pipeline: not measured with {args.sam} "
                "(the release used SAM; run with a vit_* --sam for this comparison)"
            )
        ]
    ratio = short["release_equivalent_s"] / short["ours_pipeline_s"]
    pairs = [
        r / o
        for o, r in zip(
            short.get("ours_pipeline_runs_s", [short["ours_pipeline_s"]]),
            short.get("release_equivalent_runs_s", [short["release_equivalent_s"]]),
            strict=True,
        )
    ]
    spread = (
        f"ratio of the medians of {len(pairs)} alternating runs of each side, pairs {min(pairs):.2f}-{max(pairs):.2f}x"
        if len(pairs) > 1
        else "one pair"
    )
    if short.get("sam_fast"):
        precision = (
            "SAM's image encoder in bf16 + SDPA on our side vs fp32 on the release side: part of the ratio is that "
            "precision, not the structure (run with --sam-precision fp32 for the structure alone)"
        )
    else:
        precision = "SAM in fp32 on both sides"
    if short["ours_prompts"] == short["release_prompts"]:
        # every trajectory on every frame (--objects): no dummy prompts, no frame without boxes
        prompts = "both sides prompt the same boxes on every frame"
    else:
        prompts = "ours prompts SAM only for boxes that exist (no [0,0,0,0] dummies) and skips frames without boxes"
    return [
        (
            f"speed vs release-equivalent pipeline ({args.frames[0]} frames, frames->masks): "
            f"{ratio:.2f}x ({spread}; ours {short['ours_pipeline_s']:.2f} s, release-equivalent "
            f"{short['release_equivalent_s']:.2f} s; SAM box prompts: ours "
            f"{short['ours_prompts']}, release-equivalent {short['release_prompts']})"
        ),
        (
            f"  why: ours decodes once and tracks and segments in one pass; {prompts}; the release "
            "tracks the whole video first, then decodes again for SAM. Its per-frame SAM reload "
            f"(2.5 GB) is not counted here, which would dominate. Both sides use the same models; {precision}; "
            f"the tracker in {args.precision} on both."
        ),
    ]
