"""The app's GPU side: ZeroGPU (Hugging Face ``spaces``), the device, the GPU time a job asks for and the frames
that time allows (``GpuFrameCap``), and the GPU function that runs a job.

``app.py`` imports this module first: ``spaces`` is imported here before anything imports torch, as ZeroGPU asks
(it must come before torch initialises CUDA). Off Spaces ``spaces.GPU`` is a no-op, and without the package the
decorator below is the identity. Nothing here imports gradio.
"""

from __future__ import annotations

try:  # ZeroGPU wants `spaces` imported before torch initialises CUDA.
    import spaces
except ImportError:
    spaces = None

import functools
import gc
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from uvosam.config import PipelineConfig
from uvosam.encoder_graphs import CAPTURE_LOCK
from uvosam.job import run_job
from uvosam.job_types import JobOptions, JobProgress
from uvosam.pipeline import UVOSAM
from uvosam.video import VideoInfo, probe

if TYPE_CHECKING:
    from uvosam_app.models import GetPipeline

logger = logging.getLogger("uvosam.app")  # the server log's logger, as the other modules'


def zero_gpu() -> bool:
    """True on a ZeroGPU Space (``spaces`` installed and ``SPACES_ZERO_GPU`` set)."""
    return spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "true"}


def default_device() -> str:
    """``cuda`` on a GPU machine or on ZeroGPU (models go to CUDA at start, as ZeroGPU expects)."""
    return "cuda" if zero_gpu() or torch.cuda.is_available() else "cpu"


ToError = Callable[[BaseException], BaseException]
_SOURCES: dict[str, tuple[GetPipeline, ToError]] = {}
# ZeroGPU seconds asked per frame, by mask model (the tracker and the video encoding included). The SAM 2.1 values
# are estimates, not measurements (no SAM 2.1 run has been timed on ZeroGPU): all run at 1024 px, and SAM 2.1's
# Hiera encoders are lighter than SAM's ViTs (39M/46M/81M/224M parameters against ViT-B's 94M and ViT-L's 312M; the
# SAM 2 paper's abstract has SAM 2 6x faster than SAM on images, for its Hiera-B+ model against ViT-H), so
# tiny/small ask a little less than ViT-B, base+ as much as ViT-B and large less than ViT-L, rounded up rather than
# down (a job over its duration is cut off).
MAX_GPU_S = 600  # the most a ZeroGPU function may ask for, after its GPU's duration factor (duration_factor)
_START_S = 20  # asked for each job besides its frames: the models to the GPU, the first frames, the exports
_PER_FRAME_S = {
    "vit_b": 0.2,
    "vit_l": 0.35,
    "vit_h": 0.5,
    "sam2.1_tiny": 0.15,
    "sam2.1_small": 0.15,
    "sam2.1_base_plus": 0.2,
    "sam2.1_large": 0.3,
}


def register_source(get_pipeline: GetPipeline, to_error: ToError = lambda err: err) -> str:
    """A key for the pipeline source, so GPU jobs get only picklable arguments (ZeroGPU pickles).

    ``to_error`` maps what a job raises to what the user should see; it runs inside the GPU
    function, because on ZeroGPU that function runs in a worker process that hands on only a
    ``gr.Error``'s message (any other exception arrives as ``gr.Error(<class name>)``).
    """
    key = f"source-{len(_SOURCES)}"
    _SOURCES[key] = (get_pipeline, to_error)
    return key


def gpu_seconds(
    source_key: str,
    preset: str,
    sam: str,
    config: PipelineConfig,
    video: str,
    work_dir: str,
    options: JobOptions,
) -> int:
    """ZeroGPU ``duration``: seconds asked for a job, growing with its frames (job's arguments)."""
    try:
        frames = probe(video).num_output_frames(
            stride=options.stride, max_frames=options.max_frames
        )
    except (OSError, ValueError):
        return 60  # the job itself reports the bad input
    return gpu_seconds_for(frames, sam)


def duration_factor() -> float:
    """ZeroGPU's duration factor of this Space's GPU: ``spaces`` multiplies the duration a GPU function asks for by
    it (``spaces/zero/client.py``, ``get_duration_seconds``, 0.51.3), both the time the run is given and what
    counts against the visitor's quota; ``spaces/zero/configs.json`` has 1.0 for the H200 and 1.5 for the RTX PRO
    6000 Blackwell. 1.0 off ZeroGPU, and wherever ``spaces`` does not say it (its config is private: any change
    there falls back to 1.0). The ``xlarge`` size, which ``spaces`` does not multiply, is not used: the app asks
    for the default size, which becomes ``xlarge`` only for models of over 45 GB."""
    if not zero_gpu():
        return 1.0
    try:
        factor = float(spaces.zero.config.get_config()["duration_factor"])
    except Exception as err:  # noqa: BLE001 - a private API of `spaces`: whatever changed there, ask as on the H200
        _factor_unread(f"{type(err).__name__}: {err}")
        return 1.0
    if not (math.isfinite(factor) and factor > 0):
        _factor_unread(f"not a positive number: {factor!r}")
        return 1.0
    return factor


@functools.cache
def _factor_unread(why: str) -> None:
    """Log, once per reason, that ``duration_factor`` fell back to 1.0 on ZeroGPU."""
    logger.warning(
        "ZeroGPU: the GPU's duration factor could not be read from the spaces package (%s); runs ask for GPU time "
        "as on an H200 (factor 1.0): on a GPU with a larger factor (RTX PRO 6000: 1.5) a long run may be refused "
        "and the page understates what visitors are charged",
        why,
    )


def max_request_s() -> int:
    """The most seconds a run's GPU function asks for: ``MAX_GPU_S`` once multiplied by ``duration_factor``
    (400 s for 1.5), so that ZeroGPU does not refuse the request as an illegal duration."""
    return _whole(MAX_GPU_S / duration_factor())


def gpu_seconds_for(frames: int, sam: str) -> int:
    """ZeroGPU seconds asked for a job of ``frames`` output frames with the mask model ``sam`` (at most
    ``max_request_s``), before ``spaces`` multiplies them by ``duration_factor``."""
    return int(min(max_request_s(), _START_S + frames * _PER_FRAME_S.get(sam, 0.5)))


def quota_seconds_for(frames: int, sam: str) -> int:
    """The GPU seconds a job of ``frames`` output frames with ``sam`` counts against the visitor's ZeroGPU quota
    (at most ``MAX_GPU_S``): ``gpu_seconds_for`` times ``duration_factor``, rounded as ``spaces`` rounds it."""
    return round(gpu_seconds_for(frames, sam) * duration_factor())


def zero_gpu_max_frames(sam: str) -> int | None:
    """On ZeroGPU, the most output frames a run with the mask model ``sam`` covers: those whose estimate fits in
    ``max_request_s`` (SAM ViT-H: 1160 on the H200, 760 where the factor is 1.5), so that no run is cut off by
    ZeroGPU mid-way or refused when the host allows more frames (``UVOSAM_MAX_FRAMES``); None elsewhere (no such
    limit)."""
    if not zero_gpu():
        return None
    return _whole((max_request_s() - _START_S) / _PER_FRAME_S.get(sam, 0.5))


def _whole(x: float) -> int:
    """``x`` rounded down, after rounding away float error: 580 / 0.2 is 2899.9999999999995 in floating point."""
    return math.floor(round(x, 6))


@dataclass(frozen=True)
class GpuFrameCap:
    """On ZeroGPU, the most output ``frames`` a run covers with its mask model (``mask_model``, as the page names it):
    those that fit in its GPU time (``zero_gpu_max_frames``)."""

    frames: int
    mask_model: str

    @classmethod
    def of(cls, sam: str, *, mask_model: str) -> GpuFrameCap | None:
        """The cap of a run with the mask model ``sam`` (``mask_model``: its name on the page,
        ``uvosam_app.models.mask_model_label``); None off ZeroGPU (no cap)."""
        frames = zero_gpu_max_frames(sam)
        return None if frames is None else cls(frames, mask_model)

    def limit(self, max_frames: int) -> int:
        """What a run asked to cover ``max_frames`` frames covers at most."""
        return min(max_frames, self.frames)

    def cuts(self, info: VideoInfo, *, stride: int, max_frames: int) -> bool:
        """Whether a run of ``info`` with ``stride`` and ``max_frames`` covers fewer frames than asked."""
        return self.frames < info.num_output_frames(stride=stride, max_frames=max_frames)

    def text(self) -> str:
        return (
            f"on ZeroGPU a run covers at most {self.frames} frames with {self.mask_model} ({MAX_GPU_S} s of GPU "
            "time at most): a larger Frame stride spreads them over more of the video"
        )


def _gpu(duration: Callable[..., int]) -> Callable[[Callable], Callable]:
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


@_gpu(duration=gpu_seconds)
def gpu_job(
    source_key: str,
    preset: str,
    sam: str,
    config: PipelineConfig,
    video: str,
    work_dir: str,
    options: JobOptions,
) -> Iterator[JobProgress]:
    """``run_job`` with the loaded (preset, sam) models and this run's ``PipelineConfig``; what it
    raises goes through the source's ``to_error`` (``register_source``)."""
    get_pipeline, to_error = _SOURCES[source_key]
    try:
        base = get_pipeline(preset, sam)
        pipe = UVOSAM(base.tracker, base.segmenter, config)
        yield from run_job(pipe, video, work_dir, options)
        return
    except torch.OutOfMemoryError as err:
        err.__traceback__ = None  # its frames hold the tensors that filled the GPU
        oom = err
    except Exception as err:  # noqa: BLE001 - every error goes through the source's to_error
        raise to_error(err) from None
    free_gpu_memory()  # outside the except block: the failed run's tensors are unreachable now
    raise to_error(oom) from None


def free_gpu_memory() -> None:
    """Return the CUDA caching allocator's unused blocks to the driver (no-op without CUDA). Under the CUDA-graph
    capture lock: during another session's capture (its models' warm-up) ``empty_cache`` could free a dropped graph's
    pool (``cudaFree``), which would make that capture fail and its segmenter run eager for good."""
    gc.collect()
    with CAPTURE_LOCK:
        torch.cuda.empty_cache()
