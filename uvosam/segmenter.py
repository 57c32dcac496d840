"""The SAM stage: box prompts -> one mask per box, one image-encoder pass per frame.

``BoxPromptSegmenter`` wraps a ``segment_anything.modeling.Sam`` by composition and reproduces what
the UVOSAM release does per frame (``SamPredictor.set_image`` + one batched ``predict_torch`` with
``multimask_output=False``, TRACKER_SPEC §5): ResizeLongestSide to ``img_size`` (PIL bilinear),
``Sam.preprocess`` (normalise, zero-pad), the image encoder once, all boxes through the prompt
encoder and mask decoder in one batch, ``Sam.postprocess_masks`` and ``logits > mask_threshold``. On
in-image boxes the masks equal ``SamPredictor``'s bit for bit (tested). Differences from the
release, all deliberate:

* The model is loaded once; nothing per call is kept on ``self`` (no ``SamPredictor``), so one
  segmenter can serve several threads/sessions at once.
* Boxes are clipped to the image; a box with no area after clipping (zero/negative size, entirely
  outside, the release's ``[0, 0, 0, 0]`` dummy) is not sent to SAM and gets an empty mask with
  score 0. A NaN coordinate raises ``ValueError``. Frames without any usable box do not run SAM at
  all.
* Overlapping masks are made disjoint (``resolve_overlaps``) unless ``SegmenterConfig.overlap ==
  "none"``.

Fast path (``SegmenterConfig.fast``; ``None`` = on when the device is CUDA): the image encoder runs
under bf16 autocast with attention through ``scaled_dot_product_attention`` (``uvosam.sam_fast``;
the model itself is untouched). Tolerances, tested on the tiny random SAM: the SDPA attention
equals SAM's attention in float32 to 1e-5 and the whole encoder to 1e-4 (max abs); bf16 autocast
masks reach IoU >= 0.99 against float32 on a synthetic frame. Expect the same order of agreement
with real weights, not bit equality.

Compile (``SegmenterConfig.compile``, off by default): the function that runs the encoder (fast or
plain) goes through ``torch.compile`` once per segmenter, at its first encoder call; the shared
model is not modified. Tested on CPU: the compiled fast path's masks equal the uncompiled ones (IoU
>= 0.99, tiny SAM).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, Sam
from segment_anything.utils.transforms import ResizeLongestSide

from uvosam import hub, sam_fast
from uvosam.config import SAM2_MODEL_TYPES, SAM_MODEL_TYPES, SegmenterConfig
from uvosam.errors import MissingPackageError, WeightsError

logger = logging.getLogger(__name__)

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


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
        raise ValueError(f"boxes_xyxy must have shape (N, 4); got {boxes.shape}")
    bad = np.flatnonzero(np.isnan(boxes).any(axis=1))
    if bad.size:
        raise ValueError(
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
        raise ValueError(
            f"image must be a non-empty (H, W, 3) uint8 RGB array; got shape {image.shape}, "
            f"dtype {image.dtype}"
        )
    return image


def _model_type_and_source(model_type_or_path: str | os.PathLike) -> tuple[str | None, str]:
    """(model type, name or path for ``hub.resolve``).

    ``"vit_h"``/``"sam_vit_h"`` -> ``("vit_h", "sam_vit_h")``; a path -> (type of its known
    basename, else ``None``: read from the checkpoint by ``_model_type_of``; the path).
    """
    name = str(model_type_or_path)
    if name in SAM_MODEL_TYPES:
        return name, f"sam_{name}"
    if name.startswith("sam_") and name[4:] in SAM_MODEL_TYPES:
        return name[4:], name
    for model_type in SAM_MODEL_TYPES:
        spec = hub.WEIGHTS.get(f"sam_{model_type}")
        if spec is not None and Path(name).name == spec.basename:
            return model_type, name
    return None, name


_EMBED_DIMS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def _is_sam2_state(state: dict) -> bool:
    """A SAM 2 checkpoint (``{"model": {"image_encoder.trunk...": ...}}``) rather than a SAM state dict."""
    inner = state.get("model", state)
    return isinstance(inner, dict) and any(str(k).startswith("image_encoder.trunk.") for k in inner)


def load_segmenter(
    model_type_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    config: SegmenterConfig | None = None,
    **kwargs,
) -> BoxSegmenterBase:
    """``BoxPromptSegmenter`` (SAM) or ``uvosam.sam2_segmenter.Sam2BoxSegmenter`` (SAM 2.1), loaded from a model
    type (``vit_h``, ``sam2.1_tiny`` ...), a ``hub.WEIGHTS`` key or a checkpoint path.

    SAM 2.1 is chosen for its model types and released file names (``sam2.1_hiera_small.pt``), and for any other
    path when ``config.model_type`` is a SAM 2.1 type. ``kwargs`` go to ``from_pretrained`` (``dtype``,
    ``checkpoints_dir``, ``cache_dir``).
    """
    config = config if config is not None else SegmenterConfig()
    source = model_type_or_path if model_type_or_path is not None else config.model_type
    if uses_sam2(source, config):
        from uvosam.sam2_segmenter import Sam2BoxSegmenter

        return Sam2BoxSegmenter.from_pretrained(source, device=device, config=config, **kwargs)
    return BoxPromptSegmenter.from_pretrained(source, device=device, config=config, **kwargs)


def uses_sam2(model_type_or_path: str | os.PathLike | None, config: SegmenterConfig | None = None) -> bool:
    """Whether ``load_segmenter(model_type_or_path, config=config)`` loads SAM 2.1 (rather than SAM): for a SAM 2.1
    model type, a released SAM 2.1 file name (``sam2.1_hiera_small.pt``), and any other path that is not a known
    SAM file when ``config.model_type`` is a SAM 2.1 type. Looks at names only (no file is opened)."""
    config = config if config is not None else SegmenterConfig()
    source = str(model_type_or_path if model_type_or_path is not None else config.model_type)
    sam2_names = {hub.WEIGHTS[t].basename for t in SAM2_MODEL_TYPES if t in hub.WEIGHTS}
    return source in SAM2_MODEL_TYPES or Path(source).name in sam2_names or (
        _model_type_and_source(source)[0] is None and config.model_type in SAM2_MODEL_TYPES
    )


def check_segmenter_packages(
    model_type_or_path: str | os.PathLike | None, config: SegmenterConfig | None = None
) -> None:
    """Raise ``MissingPackageError`` now if ``load_segmenter`` would need a package that is not installed (``sam2``
    for SAM 2.1), so that a caller can say so before slower work (loading the tracker, a download). Instant."""
    if uses_sam2(model_type_or_path, config):
        from uvosam.sam2_segmenter import sam2_missing_message

        missing = sam2_missing_message()
        if missing is not None:
            raise MissingPackageError(missing)


def _model_type_of(state: dict, path: Path, fallback: str) -> str:
    """SAM size from the image encoder's width in a state dict (768 / 1024 / 1280), else ``fallback``."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    if weight is None or int(weight.shape[0]) not in _EMBED_DIMS:
        logger.warning("%s: cannot tell the SAM size from the file; assuming %s", path, fallback)
        return fallback
    return _EMBED_DIMS[int(weight.shape[0])]


def plain_encode(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SAM's own encoder forward: (B, 3, S, S) preprocessed images -> (B, C, S/16, S/16)."""
    return encoder(x)


def fast_encode(encoder: ImageEncoderViT, x: torch.Tensor) -> torch.Tensor:
    """The fast path's encoder forward: SDPA attention under bf16 autocast on ``x``'s device.

    Args:
        x: (B, 3, S, S) preprocessed images.

    Returns:
        (B, C, S/16, S/16) embeddings (dtype as autocast leaves it; the caller casts).
    """
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
        return sam_fast.encoder_forward(encoder, x)


def _compile_error_summary(err: Exception, limit: int = 400) -> str:
    """The error's type and its message lines, minus Dynamo's "set TORCHDYNAMO_VERBOSE" advice."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    advice = ("Set TORCHDYNAMO_VERBOSE", "For even more")
    lines = [line for line in lines if not line.startswith(advice)]
    text = " ".join([type(err).__name__ + ":", *lines])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_compiled(fn: Callable, encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``fn(encoder, x)`` for a compiled ``fn``; a failed compile becomes a clear ``RuntimeError``.

    Only compiler errors (``torch._dynamo.exc.TorchDynamoException``, which inductor's errors
    subclass) are rewritten; anything else (e.g. ``torch.OutOfMemoryError`` while running) passes
    unchanged.
    """
    from torch._dynamo.exc import TorchDynamoException

    try:
        return fn(encoder, x)
    except TorchDynamoException as err:
        raise RuntimeError(
            f"torch.compile of SAM's image encoder failed on {x.device} "
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
    """

    config: SegmenterConfig
    device: torch.device
    fast: bool
    _encode_fn: Callable

    def _init_compile(self) -> None:
        self._compiled: Callable | None = None
        self._compile_lock = threading.Lock()

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
    ) -> list[SegmentOutput]:
        """``segment`` for several frames; the encoder takes ``config.encoder_batch`` at a time.

        Args:
            images: T frames, each (H_t, W_t, 3) uint8 RGB (sizes may differ).
            boxes_list: T arrays (N_t, 4) of original-pixel boxes.
            scores, track_ids: optional T arrays (N_t,) each (or ``None`` entries), as in
                ``segment``.

        Returns:
            T ``SegmentOutput``, equal to T ``segment`` calls.
        """
        t = len(images)
        scores = list(scores) if scores is not None else [None] * t
        track_ids = list(track_ids) if track_ids is not None else [None] * t
        if not len(boxes_list) == len(scores) == len(track_ids) == t:
            raise ValueError(
                f"expected one boxes/scores/track_ids entry per image ({t}); "
                f"got {len(boxes_list)}, {len(scores)}, {len(track_ids)}"
            )
        images = [_as_image(im) for im in images]
        prompts = [prepare_boxes(b, im.shape[:2]) for b, im in zip(boxes_list, images, strict=True)]
        raw: list[tuple[np.ndarray, np.ndarray] | None] = [None] * t
        todo = [i for i in range(t) if prompts[i][1].any()]
        step = self.config.encoder_batch
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            features = self._encode([images[i] for i in chunk])
            for j, i in enumerate(chunk):
                raw[i] = self._decode(features[j], prompts[i], images[i].shape[:2])
        return [
            self._finish(images[i], prompts[i], raw[i], scores[i], track_ids[i]) for i in range(t)
        ]

    def _encode(self, images: list[np.ndarray]) -> list:
        raise NotImplementedError

    def _decode_boxes(
        self, features, boxes_px: torch.Tensor, original_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _run_encoder(self, module: torch.nn.Module, x: torch.Tensor):
        """``_encode_fn(module, x)``, compiled once per segmenter when ``config.compile``."""
        if self.config.compile:
            return run_compiled(self._compiled_encode_fn(), module, x)
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
                    "takes longer", self.config.model_type, "fast" if self.fast else "plain",
                )
                self._compiled = torch.compile(self._encode_fn, dynamic=False)
            return self._compiled

    def _decode(
        self, features, prompt: tuple[np.ndarray, np.ndarray], original_size: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decode a frame's usable boxes, ``config.decoder_batch`` at a time -> ((M, H, W) bool masks, (M,) f32 IoU)."""
        boxes, usable = prompt
        boxes_t = torch.as_tensor(boxes[usable], dtype=torch.float32, device=self.device)
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
                raise ValueError(
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


class BoxPromptSegmenter(BoxSegmenterBase):
    """Box-prompted SAM: ``segment(image, boxes_xyxy) -> SegmentOutput``; read-only once built.

    Args:
        sam: a ``segment_anything.modeling.Sam`` (any size). It is only read, except that a
            ``device``/``dtype`` given here moves/casts it in place once (``nn.Module.to``).
        config: ``SegmenterConfig`` (``model_type`` is informative here; the model decides).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; ``None`` keeps the model where it is.
        dtype: weight dtype of the image encoder (e.g. ``torch.bfloat16`` halves its memory);
            ``None`` keeps it. Only the encoder is cast: SAM's prompt encoder computes in float32
            and the small decoder stays so.
    """

    def __init__(
        self,
        sam: Sam,
        config: SegmenterConfig | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.config = config if config is not None else SegmenterConfig()
        if device is not None:
            sam.to(resolve_device(device))
        if dtype is not None:
            sam.image_encoder.to(dtype)
        self.model = sam
        self.device = sam.device
        self.encoder_dtype = next(sam.image_encoder.parameters()).dtype
        self.decoder_dtype = sam.mask_decoder.iou_token.weight.dtype
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        fast = self.config.fast if self.config.fast is not None else self.device.type == "cuda"
        if fast and not isinstance(sam.image_encoder, ImageEncoderViT):
            _warn_once(
                "fast-encoder",
                "SegmenterConfig.fast needs a ViT image encoder; using the plain forward.",
            )
            fast = False
        self.fast = fast
        self._encode_fn = fast_encode if fast else plain_encode
        self._init_compile()

    @classmethod
    def from_pretrained(
        cls,
        model_type_or_path: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "auto",
        config: SegmenterConfig | None = None,
        dtype: torch.dtype | None = None,
        checkpoints_dir: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> BoxPromptSegmenter:
        """Build SAM with ``sam_model_registry`` and load verified weights (weights-only load).

        Args:
            model_type_or_path: ``"vit_b"|"vit_l"|"vit_h"``, a ``hub.WEIGHTS`` key (``"sam_vit_h"``)
                or a checkpoint path (its architecture from its known basename, else from the
                encoder width stored in the file); ``None`` = ``config.model_type``.
            device, dtype: as in the constructor (``"auto"`` = CUDA if available).
            checkpoints_dir, cache_dir: passed to ``hub.resolve``.

        Raises:
            FileNotFoundError: weights not found (the message says where it looked and how to get
                them).
            WeightsError: bad checksum, unreadable file, or a state dict that does not fit the
                architecture (a SAM 2 checkpoint is named as such).
            ValueError: a SAM 2.1 model type (``load_segmenter`` picks the class for it).
        """
        config = config if config is not None else SegmenterConfig()
        source = model_type_or_path if model_type_or_path is not None else config.model_type
        if str(source) in SAM2_MODEL_TYPES:  # before downloading a file this class cannot load
            raise ValueError(
                f"{source} is a SAM 2.1 model; load it with uvosam.segmenter.load_segmenter (which picks the class) "
                f"or uvosam.sam2_segmenter.Sam2BoxSegmenter.from_pretrained"
            )
        model_type, source = _model_type_and_source(source)
        path = hub.resolve(source, checkpoints_dir=checkpoints_dir, cache_dir=cache_dir)
        state = hub.load_checkpoint(path)
        if _is_sam2_state(state):
            from uvosam.sam2_segmenter import sam2_state_advice

            raise WeightsError(sam2_state_advice(state.get("model", state), path))
        fallback = config.model_type if config.model_type in SAM_MODEL_TYPES else "vit_h"
        model_type = model_type or _model_type_of(state, path, fallback)
        sam = sam_model_registry[model_type](checkpoint=None)
        hint = f"Pass the model type that matches the checkpoint (one of {SAM_MODEL_TYPES})."
        hub.load_into(sam, state, path, f"SAM {model_type}", hint)
        logger.info("loaded SAM %s from %s", model_type, path)
        return cls(sam.eval(), replace(config, model_type=model_type), device=device, dtype=dtype)

    def _encode(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """Images -> per image ((1, C, h, w) embedding in the decoder dtype, (H', W') resized size)."""
        batch, input_sizes = [], []
        for image in images:
            resized = self.transform.apply_image(image)
            pixels = (
                torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
            )
            batch.append(self.model.preprocess(pixels))
            input_sizes.append(resized.shape[:2])
        x = torch.cat(batch).to(self.encoder_dtype)
        embeddings = self._run_encoder(self.model.image_encoder, x).to(self.decoder_dtype)
        return [(embeddings[j : j + 1], size) for j, size in enumerate(input_sizes)]

    def _decode_boxes(
        self,
        features: tuple[torch.Tensor, tuple[int, int]],
        boxes_px: torch.Tensor,
        original_size: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """One mask-decoder call: (K, 4) original-pixel boxes -> ((K, H, W) bool masks, (K,) f32 IoU)."""
        embedding, input_size = features
        boxes_t = self.transform.apply_boxes_torch(boxes_px, original_size)
        prompt_encoder = self.model.prompt_encoder
        sparse, dense = prompt_encoder(points=None, boxes=boxes_t, masks=None)
        low_res, iou = self.model.mask_decoder(
            image_embeddings=embedding,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        logits = self.model.postprocess_masks(low_res, input_size, original_size)
        masks = logits[:, 0] > self.config.mask_threshold
        return masks.cpu().numpy(), iou[:, 0].float().cpu().numpy()
