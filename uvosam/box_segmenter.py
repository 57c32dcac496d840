"""What every box-prompted mask stage shares (SAM in ``uvosam.segmenter``, SAM 2.1 in ``uvosam.sam2_segmenter``).

``BoxSegmenterBase`` holds the flow around an engine's image encoder and mask decoder: boxes are checked and clipped
(``prepare_boxes``); a frame without a usable box runs no model; the encoder sees ``config.encoder_batch`` frames at
a time and the decoder ``config.decoder_batch`` boxes at a time; unusable boxes get an empty mask with score 0; and
overlapping masks are made disjoint by tracker score (``resolve_overlaps``) unless ``config.overlap == "none"``.
Nothing per call is kept on ``self``, so one segmenter serves every thread and session.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from uvosam.config import SegmenterConfig
from uvosam.devices import cuda_has_bf16, slow_precision_note
from uvosam.encoder_graphs import EncoderGraphs
from uvosam.errors import InputError, SetupError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentOutput:
    """Masks for one frame, in the row order of the boxes given.

    Attributes:
        masks: (N, H, W) bool in original-frame pixels (disjoint unless ``overlap == "none"``).
        mask_scores: (N,) float32 SAM's predicted IoU of each mask (0 for boxes that were not
            decoded).
    """

    masks: np.ndarray
    mask_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.masks)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` if available, else ``cpu``; anything else -> ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16, as torch reports them): there the
    image encoders' bf16 path ran 1.4-1.9x faster than float32 (SAM 2.1 tiny to SAM ViT-B; an AMD EPYC with
    AVX512-BF16); elsewhere bf16 is emulated and slower."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None:
        return _cpu_has_bf16_before_torch_2_11()
    capabilities = get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def bf16_is_native(device: torch.device) -> bool:
    """``cuda_has_bf16`` on a CUDA device, ``cpu_has_bf16`` on the CPU, False elsewhere (MPS, XPU ...)."""
    if device.type == "cuda":
        return cuda_has_bf16(device)
    return device.type == "cpu" and cpu_has_bf16()


def _cpu_has_bf16_before_torch_2_11() -> bool:
    """``cpu_has_bf16`` where ``torch.cpu.get_capabilities`` is missing (it came in torch 2.11: 2.8-2.10, which
    requirements.txt allows a Space, lack it): the same cpuinfo flags through torch's private probes, where those
    exist. Every x86 CPU with AMX tiles (Sapphire Rapids on) also has AMX-BF16."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def prepare_boxes(
    boxes_xyxy: np.ndarray, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and clip box prompts.

    Args:
        boxes_xyxy: (N, 4) pixel boxes ``[x1, y1, x2, y2]`` in the original frame (any float dtype;
            ±inf allowed).
        image_hw: (H, W) of the frame.

    Returns:
        (boxes (N, 4) float32 clipped to ``[0, W] x [0, H]``, usable (N,) bool: positive width and
        height).

    Raises:
        ValueError: wrong shape, or a row with NaN (the message names the rows).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"boxes_xyxy must have shape (N, 4); got {boxes.shape}")
    bad = np.flatnonzero(np.isnan(boxes).any(axis=1))
    if bad.size:
        raise InputError(
            f"boxes_xyxy rows {bad.tolist()} contain NaN (first: {boxes[bad[0]].tolist()}); "
            f"drop absent tracks before segmenting instead of passing NaN boxes."
        )
    h, w = image_hw
    boxes = boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, float(w))
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, float(h))
    usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, usable


def resolve_overlaps(masks: np.ndarray, scores: np.ndarray, track_ids: np.ndarray) -> np.ndarray:
    """Make masks disjoint: a pixel claimed by several masks goes to ONE of them.

    The winner is the mask with the higher tracker score; equal scores go to the lower track id (NaN
    scores rank lowest). Pixels claimed by a single mask are unchanged; no pixel is added.

    Args:
        masks: (N, H, W) bool.
        scores: (N,) tracker scores.
        track_ids: (N,) integer track ids.

    Returns:
        (N, H, W) bool, a new array, pairwise disjoint, same row order.
    """
    masks = np.asarray(masks, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    track_ids = np.asarray(track_ids)
    n = len(masks)
    if masks.ndim != 3 or scores.shape != (n,) or track_ids.shape != (n,):
        raise ValueError(
            f"expected masks (N, H, W), scores (N,), track_ids (N,) with one N; got {masks.shape}, "
            f"{scores.shape}, {track_ids.shape}"
        )
    order = np.lexsort((track_ids, -np.nan_to_num(scores, nan=-np.inf)))
    out = np.zeros_like(masks)
    claimed = np.zeros(masks.shape[1:], dtype=bool)
    for i in order:
        out[i] = masks[i] & ~claimed
        claimed |= masks[i]
    return out


def _as_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
        raise InputError(
            f"image must be a non-empty (H, W, 3) uint8 RGB array; got shape {image.shape}, "
            f"dtype {image.dtype}"
        )
    return image


def fast_path_autocast(x: torch.Tensor) -> torch.autocast:
    """The fast paths' bf16 autocast on ``x``'s device, without autocast's cast cache: each weight is used once a
    call, so the cache saves nothing, and a CUDA-graph capture (``SegmenterConfig.cuda_graph``) must not keep casts
    in it."""
    return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, cache_enabled=False)


MATMUL_MODULES = (torch.nn.Linear, torch.nn.Conv2d)
"""The modules whose weights bf16 autocast casts on every call (``linear`` and ``conv2d`` are on its lower-precision
list on CUDA and CPU), i.e. the ones ``cast_matmul_weights`` casts once."""


def cast_matmul_weights(modules: list[torch.nn.Module], dtype: torch.dtype = torch.bfloat16) -> int:
    """Cast, in place, the float32 weights and biases of every ``MATMUL_MODULES`` module inside ``modules`` to
    ``dtype``; every other parameter and buffer (norms, position embeddings, SAM's rel-pos tables) stays as it is.

    Under ``torch.autocast(dtype=dtype)`` this changes no result: autocast casts such a weight to ``dtype`` on each
    call anyway (the same rounding), and its cast of a tensor already in ``dtype`` is a no-op; what goes is one cast
    kernel per weight and bias per call, and half of their memory. Only for a model whose every use of those modules
    runs under that autocast (outside it, a float32 input would meet a bf16 weight and fail).

    Returns:
        How many tensors were cast.
    """
    cast = 0
    for root in modules:
        for module in root.modules():
            if not isinstance(module, MATMUL_MODULES):
                continue
            for param in module.parameters(recurse=False):
                if param.dtype == torch.float32:
                    param.data = param.data.to(dtype)
                    cast += 1
    return cast


def _compile_error_summary(err: Exception, limit: int = 400) -> str:
    """The error's type and its message lines, minus Dynamo's "set TORCHDYNAMO_VERBOSE" advice."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    advice = ("Set TORCHDYNAMO_VERBOSE", "For even more")
    lines = [line for line in lines if not line.startswith(advice)]
    text = " ".join([type(err).__name__ + ":", *lines])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_compiled(
    fn: Callable, encoder: torch.nn.Module, x: torch.Tensor, model_type: str = "SAM"
) -> torch.Tensor:
    """``fn(encoder, x)`` for a compiled ``fn``; a failed compile becomes a clear ``RuntimeError``.

    Only compiler errors (``torch._dynamo.exc.TorchDynamoException``, which inductor's errors
    subclass) are rewritten; anything else (e.g. ``torch.OutOfMemoryError`` while running) passes
    unchanged.
    """
    from torch._dynamo.exc import TorchDynamoException

    try:
        return fn(encoder, x)
    except TorchDynamoException as err:
        raise SetupError(
            f"torch.compile of the image encoder of {model_type} failed on {x.device} "
            f"({_compile_error_summary(err)}). Run without compiling "
            "(SegmenterConfig(compile=False); drop --compile), or fix the compiler toolchain: "
            "inductor needs a working C++ compiler (e.g. g++) on CPU and Triton on CUDA."
        ) from err


class BoxSegmenterBase:
    """What every box-prompted segmenter shares: prompt checks, batching, scatter and overlap resolution.

    An engine subclass sets ``config``, ``device``, ``fast`` and ``_encode_fn`` and implements:

    * ``_encode(images) -> list`` of per-frame features (opaque to this class), one image-encoder pass for the
      list (``_run_encoder`` runs ``_encode_fn``, through ``torch.compile`` when ``config.compile``);
    * ``_decode_boxes(features, boxes_px, original_size) -> ((K, H, W) bool masks, (K,) float32 IoU)`` for K
      clipped boxes in original-frame pixels ((K, 4) float32 tensor on ``device``).

    It also sets ``model`` (the wrapped ``torch.nn.Module``), ``encoder_dtype`` (its image encoder's weight dtype as
    given, which its input is cast to) and ``weights_name`` (the weights it was loaded from, see ``describe``;
    ``None`` when built from a model object), names its ``family`` and implements ``_released_type() -> str | None``
    (the released model type whose architecture ``model`` has) and ``_matmul_modules()`` (what
    ``keep_matmul_weights_bf16`` casts).
    """

    family: str  # "SAM" / "SAM 2.1", as exports name it
    config: SegmenterConfig
    device: torch.device
    fast: bool
    model: torch.nn.Module
    encoder_dtype: torch.dtype
    weights_name: str | None = None
    matmul_weights_bf16: bool = False
    """Whether ``keep_matmul_weights_bf16`` cast the encoder's Linear/Conv2d weights to bfloat16 (``describe``)."""
    sdpa_float32: bool = False
    """Whether the encoder runs in float32 with SDPA attention (SAM on a GPU without native bf16; ``describe``)."""
    _encode_fn: Callable

    def describe(self) -> dict[str, Any]:
        """What this mask stage is, for an export's ``run.json`` (``uvosam.provenance``); JSON-able.

        Returns:
            ``family``, ``model_type`` (loaded by ``from_pretrained``: ``config.model_type``, which the weights
            fit; built from a model object, where the config's type is only informative: the released type whose
            architecture the model has, ``None`` for another size), ``weights`` (``weight_table.weights_label`` of the
            file ``from_pretrained`` loaded, else ``None``), ``parameters`` (the model's parameter count, which
            tells the sizes apart), ``device``, ``fast`` (the fast path), ``sdpa_float32`` (SAM's encoder in float32
            with SDPA attention: the default on a GPU without native bf16), ``compile``, ``cuda_graph``
            (``config.cuda_graph``), ``cuda_graph_fallback`` (why its encoder ran eager all the same, else ``None``),
            ``encoder_dtype`` (the image encoder's weights: ``"float32"``, ``"bfloat16"``, or ``"bfloat16 (matmul
            weights; the rest float32)"`` where ``keep_matmul_weights_bf16`` cast its Linear/Conv2d weights),
            ``mask_threshold``, ``overlap``.
        """
        loaded = self.weights_name is not None
        return {
            "family": self.family,
            "model_type": self.config.model_type if loaded else self._released_type(),
            "weights": self.weights_name,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "device": str(self.device),
            "fast": bool(self.fast),
            "sdpa_float32": self.sdpa_float32,
            "compile": self.config.compile,
            "cuda_graph": self.config.cuda_graph,
            "cuda_graph_fallback": self.cuda_graph_fallback,
            "encoder_dtype": self._encoder_dtype_text(),
            "mask_threshold": float(self.config.mask_threshold),
            "overlap": self.config.overlap,
        }

    def _encoder_dtype_text(self) -> str:
        """``describe``'s ``encoder_dtype``: ``"float32"``, ``"bfloat16"`` (the constructor's ``dtype``), or
        ``"bfloat16 (matmul weights; the rest float32)"`` after ``keep_matmul_weights_bf16``."""
        name = str(self.encoder_dtype).removeprefix("torch.")
        return f"bfloat16 (matmul weights; the rest {name})" if self.matmul_weights_bf16 else name

    def keep_matmul_weights_bf16(self) -> int:
        """For a model this segmenter owns (``from_pretrained`` calls it; nothing else may use the model): with the
        fast path on, cast the image encoder's float32 Linear/Conv2d weights and biases to bfloat16 once, in place
        (``cast_matmul_weights``; ``_matmul_modules`` names the modules). The fast path runs them under bf16
        autocast, which otherwise casts each of them on every call (ViT-H: 260 more kernel launches a frame, 973 vs
        713 counted, and about 3.8 GB of memory traffic); the masks stay bit-identical (tested) and the encoder's
        weights take about half the memory. Norms, position embeddings and SAM's rel-pos parameters stay float32, so
        every other op computes exactly as before. A no-op with the fast path off.

        Returns:
            How many tensors were cast (0 when none was float32 or the fast path is off).
        """
        if not self.fast:
            return 0
        cast = cast_matmul_weights(self._matmul_modules())
        if cast:
            self.matmul_weights_bf16 = True
            logger.info("%s: %d encoder matmul weights kept in bfloat16", self.family, cast)
        return cast

    def _matmul_modules(self) -> list[torch.nn.Module]:
        """The modules that the fast path runs under bf16 autocast and only there (``keep_matmul_weights_bf16``):
        all that ``_encode_fn`` reads, on either path (a CUDA graph's weights stamp covers them)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _matmul_modules (BoxSegmenterBase)"
        )

    def _released_type(self) -> str | None:
        raise NotImplementedError(
            f"{type(self).__name__} must implement _released_type (BoxSegmenterBase)"
        )

    @property
    def prepare_ahead(self) -> bool:
        """Whether the pipeline should call ``prepare`` on each frame in a background thread as frames are read
        (``config.prepare_ahead``; ``None``: on CUDA only); False for a segmenter without ``prepare``."""
        if not hasattr(self, "prepare"):
            return False
        if self.config.prepare_ahead is not None:
            return self.config.prepare_ahead
        return self.device.type == "cuda"

    def _fast_by_default(self) -> bool:
        """``config.fast``, where ``None`` means on where bf16 runs natively (``bf16_is_native``: a CUDA GPU of
        compute capability 8.0 on, or a CPU with ``cpu_has_bf16``)."""
        if self.config.fast is not None:
            if self.config.fast and (
                note := slow_precision_note(f"{self.family}'s encoder", "bf16", self.device)
            ):
                logger.warning(note)
            return self.config.fast
        return bf16_is_native(self.device)

    def _init_compile(self) -> None:
        """What ``_run_encoder`` needs for ``config.compile`` and ``config.cuda_graph``; call once ``device``,
        ``fast`` and ``_encode_fn`` are set."""
        self._compiled: Callable | None = None
        self._compile_lock = threading.Lock()
        self._graphs: EncoderGraphs | None = None
        self._no_graph: str | None = None
        if not self.config.cuda_graph:
            return
        if self.device.type != "cuda":
            self._no_graph = f"not a CUDA device ({self.device})"
            warnings.warn(
                f"SegmenterConfig.cuda_graph needs a CUDA device; this {self.family} runs on {self.device}: its "
                "image encoder runs eager (drop --cuda-graph / UVOSAM_CUDA_GRAPH to silence this)",
                stacklevel=3,
            )
            return
        self._no_graph = self._graph_blocker()
        if self._no_graph is not None:
            warnings.warn(
                f"SegmenterConfig.cuda_graph: {self._no_graph}; this {self.family}'s image encoder runs eager "
                "(drop --cuda-graph / UVOSAM_CUDA_GRAPH to silence this)",
                stacklevel=3,
            )
            return
        self._graphs = EncoderGraphs(
            self._encode_fn,
            f"{self.family} {self.config.model_type}",
            weights=self._matmul_modules(),  # what the encoder reads: not the decoder
        )

    def _graph_blocker(self) -> str | None:
        """Why ``_encode_fn`` cannot be captured into a CUDA graph at all (then ``config.cuda_graph`` warns at
        construction and runs eager), else ``None``."""
        return None

    @property
    def cuda_graph_fallback(self) -> str | None:
        """With ``config.cuda_graph``: why the encoder runs eager (not a CUDA device; an encoder function that cannot
        be captured, ``_graph_blocker``; a capture or its self-check failed), else ``None``; ``None`` without
        ``config.cuda_graph``."""
        if not self.config.cuda_graph:
            return None
        if self._graphs is None:
            return self._no_graph
        return self._graphs.fallback

    @torch.inference_mode()
    def segment(
        self,
        image: np.ndarray,
        boxes_xyxy: np.ndarray,
        *,
        scores: np.ndarray | None = None,
        track_ids: np.ndarray | None = None,
    ) -> SegmentOutput:
        """One mask per box: one image-encoder call (none without a usable box), one decoder call
        (per ``config.decoder_batch`` boxes).

        Args:
            image: (H, W, 3) uint8 RGB.
            boxes_xyxy: (N, 4) float32 boxes in original-frame pixels.
            scores: (N,) tracker scores for overlap resolution; ``None`` = all equal (then lower id
                wins).
            track_ids: (N,) track ids for tie-breaks; ``None`` = row index.

        Returns:
            ``SegmentOutput`` with (N, H, W) bool masks and (N,) float32 predicted IoU.
        """
        per_frame = None if scores is None else [scores]
        ids = None if track_ids is None else [track_ids]
        return self.segment_batch([image], [boxes_xyxy], scores=per_frame, track_ids=ids)[0]

    @torch.inference_mode()
    def segment_batch(
        self,
        images: list[np.ndarray],
        boxes_list: list[np.ndarray],
        *,
        scores: list[np.ndarray | None] | None = None,
        track_ids: list[np.ndarray | None] | None = None,
        prepared: list[Any] | None = None,
    ) -> list[SegmentOutput]:
        """``segment`` for several frames; the encoder takes ``config.encoder_batch`` at a time.

        Args:
            images: T frames, each (H_t, W_t, 3) uint8 RGB (sizes may differ).
            boxes_list: T arrays (N_t, 4) of original-pixel boxes.
            scores, track_ids: optional T arrays (N_t,) each (or ``None`` entries), as in
                ``segment``.
            prepared: optional T results of ``prepare(images[t])`` (or ``None`` entries: prepared here), for a
                segmenter that has ``prepare``; the same masks either way.

        Returns:
            T ``SegmentOutput``, equal to T ``segment`` calls.
        """
        t = len(images)
        scores = list(scores) if scores is not None else [None] * t
        track_ids = list(track_ids) if track_ids is not None else [None] * t
        prepared = list(prepared) if prepared is not None else [None] * t
        if not len(boxes_list) == len(scores) == len(track_ids) == len(prepared) == t:
            raise InputError(
                f"expected one boxes/scores/track_ids/prepared entry per image ({t}); "
                f"got {len(boxes_list)}, {len(scores)}, {len(track_ids)}, {len(prepared)}"
            )
        images = [_as_image(im) for im in images]
        prompts = [prepare_boxes(b, im.shape[:2]) for b, im in zip(boxes_list, images, strict=True)]
        raw: list[tuple[np.ndarray, np.ndarray] | None] = [None] * t
        todo = [i for i in range(t) if prompts[i][1].any()]
        step = self.config.encoder_batch
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            # the boxes go to the device before the encoder is queued: an upload from ordinary memory waits for
            # the GPU to finish all queued work, which after the encoder left it idle while the decoder was queued
            boxes = [self._boxes_on_device(prompts[i]) for i in chunk]
            features = self._encode([images[i] for i in chunk], [prepared[i] for i in chunk])
            for j, i in enumerate(chunk):
                raw[i] = self._decode(features[j], boxes[j], images[i].shape[:2])
        return [
            self._finish(images[i], prompts[i], raw[i], scores[i], track_ids[i]) for i in range(t)
        ]

    def _encode(self, images: list[np.ndarray], prepared: list[Any]) -> list:
        raise NotImplementedError

    def _decode_boxes(
        self, features, boxes_px: torch.Tensor, original_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _run_encoder(self, module: torch.nn.Module, x: torch.Tensor):
        """``_encode_fn(module, x)``, compiled once per segmenter when ``config.compile``, replayed from a CUDA graph
        when ``config.cuda_graph`` (``uvosam.encoder_graphs``; eager where that cannot be)."""
        if self.config.compile:
            return run_compiled(self._compiled_encode_fn(), module, x, self.config.model_type)
        if self._graphs is not None:  # made on a CUDA device only
            return self._graphs(module, x)
        return self._encode_fn(module, x)

    def _compiled_encode_fn(self) -> Callable:
        """``torch.compile(self._encode_fn)``, made once per segmenter on first use (thread-safe).

        ``dynamic=False``: the input is always (B, 3, S, S); each new batch size B compiles once more (at most
        ``config.encoder_batch`` sizes).
        """
        with self._compile_lock:
            if self._compiled is None:
                logger.info(
                    "compiling the image encoder of %s (%s forward) with torch.compile; the first call "
                    "takes longer",
                    self.config.model_type,
                    "fast" if self.fast else "plain",
                )
                self._compiled = torch.compile(self._encode_fn, dynamic=False)
            return self._compiled

    def _boxes_on_device(self, prompt: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
        """A frame's usable boxes (``prepare_boxes``) as an (M, 4) float32 tensor on the segmenter's device."""
        boxes, usable = prompt
        return torch.as_tensor(boxes[usable], dtype=torch.float32, device=self.device)

    def _decode(
        self, features, boxes_t: torch.Tensor, original_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode a frame's (M, 4) usable boxes (``_boxes_on_device``), ``config.decoder_batch`` at a time ->
        ((M, H, W) bool masks, (M,) f32 IoU)."""
        step = self.config.decoder_batch
        parts = [
            self._decode_boxes(features, boxes_t[i : i + step], original_size)
            for i in range(0, len(boxes_t), step)
        ]
        if len(parts) == 1:  # the usual case: no (N, H, W) copy
            return parts[0]
        return np.concatenate([m for m, _ in parts]), np.concatenate([s for _, s in parts])

    def _finish(
        self,
        image: np.ndarray,
        prompt: tuple[np.ndarray, np.ndarray],
        raw: tuple[np.ndarray, np.ndarray] | None,
        scores: np.ndarray | None,
        track_ids: np.ndarray | None,
    ) -> SegmentOutput:
        """Scatter decoded rows to all N rows (unusable: empty, score 0), then resolve overlaps."""
        usable = prompt[1]
        n = len(usable)
        for name, values in (("scores", scores), ("track_ids", track_ids)):
            if values is not None and np.shape(values) != (n,):
                raise InputError(
                    f"{name} must have shape ({n},) like the boxes; got {np.shape(values)}"
                )
        h, w = image.shape[:2]
        masks = np.zeros((n, h, w), dtype=bool)
        mask_scores = np.zeros((n,), dtype=np.float32)
        if raw is not None:
            masks[usable], mask_scores[usable] = raw
        if self.config.overlap == "score" and n > 1:
            scores = np.zeros(n) if scores is None else np.asarray(scores)
            track_ids = np.arange(n) if track_ids is None else np.asarray(track_ids)
            masks = resolve_overlaps(masks, scores, track_ids)
        return SegmentOutput(masks=masks, mask_scores=mask_scores)
