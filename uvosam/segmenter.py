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

Fast path (``SegmenterConfig.fast``; ``None`` = on where bf16 runs natively: a CUDA GPU of compute
capability 8.0 on, or a CPU with AVX512-BF16 or AMX, ``uvosam.box_segmenter.bf16_is_native``): the image
encoder runs under bf16 autocast with attention through ``scaled_dot_product_attention`` (``uvosam.sam_fast``; a
model given to the constructor is untouched; ``from_pretrained``'s own model keeps the encoder's Linear/Conv2d
weights in bf16, ``keep_matmul_weights_bf16``: bit-identical masks, one cast kernel less per weight
and frame). Tolerances, tested on the tiny random SAM: the SDPA attention equals SAM's attention in
float32 to 1e-5 and the whole encoder to 1e-4 (max abs). The bf16 masks are not
bit-equal to float32's: per mask at most 0.5% of the frame's pixels differ, so a mask of at least
a fifth of the frame keeps IoU >= 0.99, while a small one can fall far lower (tests/model_helpers.py
``check_fast_path_tolerance``; docs/mask_models.md). Not checked with real weights.

On a CUDA GPU without native bf16 (a T4, a V100) the default runs the encoder in float32 with SDPA attention
(``sdpa_encode``: SAM's own attention materialises about three attention-sized tensors per global block, ~3 GB a
ViT-H frame); an explicit ``fast=False`` keeps SAM's own forward.

Compile (``SegmenterConfig.compile``, off by default): the function that runs the encoder (fast or
plain) goes through ``torch.compile`` once per segmenter, at its first encoder call; the shared
model is not modified. Tested on CPU: the compiled fast path's masks equal the uncompiled ones (IoU
>= 0.99, tiny SAM).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, Sam
from segment_anything.utils.transforms import ResizeLongestSide

from uvosam import hub, sam_fast, weight_loading, weight_table
from uvosam.box_segmenter import BoxSegmenterBase, fast_path_autocast, resolve_device
from uvosam.config import SAM2_MODEL_TYPES, SAM_MODEL_TYPES, SegmenterConfig, config_or
from uvosam.errors import InputError, MissingPackageError, WeightsError
from uvosam.sam2_segmenter import (
    Sam2BoxSegmenter,
    has_hiera_trunk,
    sam2_1_size_of,
    sam2_missing_message,
    sam2_state_advice,
)

logger = logging.getLogger(__name__)

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


def weights_key(model_type: str) -> str:
    """The ``weight_table.WEIGHTS`` key of a mask model type: ``sam_vit_b`` for SAM's ``vit_b``, the type itself
    for SAM 2.1 (``sam2.1_tiny``)."""
    return model_type if model_type in SAM2_MODEL_TYPES else f"sam_{model_type}"


def _model_type_and_source(model_type_or_path: str | os.PathLike) -> tuple[str | None, str]:
    """(model type, name or path for ``hub.resolve``).

    ``"vit_h"``/``"sam_vit_h"`` -> ``("vit_h", "sam_vit_h")``; a path -> (type of its known
    basename, else ``None``: read from the checkpoint by ``_model_type_of``; the path).
    """
    name = str(model_type_or_path)
    if name in SAM_MODEL_TYPES:
        return name, weights_key(name)
    if name.startswith("sam_") and name[4:] in SAM_MODEL_TYPES:
        return name[4:], name
    for model_type in SAM_MODEL_TYPES:
        spec = weight_table.WEIGHTS.get(weights_key(model_type))
        if spec is not None and Path(name).name == spec.basename:
            return model_type, name
    return None, name


_VIT_SIZES = {
    (768, 12): "vit_b",
    (1024, 24): "vit_l",
    (1280, 32): "vit_h",
}  # (width, depth) of the image encoder
_EMBED_DIMS = {width: model_type for (width, _), model_type in _VIT_SIZES.items()}
# the image encoder's first weight, (width, 3, 16, 16): its width tells the SAM size
_ENCODER_KEY = "image_encoder.patch_embed.proj.weight"


def _is_sam2_state(state: dict) -> bool:
    """A SAM 2 checkpoint (``{"model": {"image_encoder.trunk...": ...}}``) rather than a SAM state dict."""
    inner = state.get("model", state)
    return isinstance(inner, dict) and has_hiera_trunk(inner)


def load_segmenter(
    model_type_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    config: SegmenterConfig | None = None,
    **kwargs,
) -> BoxSegmenterBase:
    """``BoxPromptSegmenter`` (SAM) or ``uvosam.sam2_segmenter.Sam2BoxSegmenter`` (SAM 2.1), loaded from a model
    type (``vit_h``, ``sam2.1_tiny`` ...), a ``weight_table.WEIGHTS`` key or a checkpoint path.

    Which of the two, and which SAM 2.1 size, ``sam2_model_type`` decides (names first, else the file's keys); a
    SAM file's size is read from its image encoder's width. ``kwargs`` go to ``from_pretrained`` (``dtype``,
    ``checkpoints_dir``, ``cache_dir``).
    """
    config = config_or(config, SegmenterConfig(), "SegmenterConfig(fast=False)")
    source = model_type_or_path if model_type_or_path is not None else config.model_type
    model_type = sam2_model_type(source, config)
    if model_type is None:
        return BoxPromptSegmenter.from_pretrained(source, device=device, config=config, **kwargs)
    if model_type != config.model_type and _sam2_type_by_name(str(source)) is None:
        logger.info(
            "%s holds SAM 2.1 %s (by its Hiera trunk's width and depth): loading it as that",
            source,
            model_type,
        )
    config = replace(config, model_type=model_type)
    return Sam2BoxSegmenter.from_pretrained(source, device=device, config=config, **kwargs)


def sam2_file_size(path: str | os.PathLike) -> str | None:
    """The SAM 2.1 model type a checkpoint file holds, told by its Hiera trunk's width and depth
    (``sam2_segmenter.sam2_1_size_of``), else ``None`` (not a file, a SAM file, SAM 2.0, another size). Reads the
    keys and shapes only (``weight_loading.peek_checkpoint``), not the weights."""
    if not Path(path).is_file():
        return None
    state = weight_loading.peek_checkpoint(path)
    inner = None if state is None else state.get("model", state)
    return sam2_1_size_of(inner) if isinstance(inner, dict) else None


def sam2_model_type(
    model_type_or_path: str | os.PathLike | None, config: SegmenterConfig | None = None
) -> str | None:
    """The SAM 2.1 model type ``load_segmenter(model_type_or_path, config=config)`` loads, or ``None`` when it loads
    SAM: the one place that decides, used by the loader and by ``check_segmenter_packages``.

    By name first: a SAM 2.1 model type or released file name (``sam2.1_hiera_small.pt``) -> its type; a SAM model
    type, weight name or released file name -> ``None``. Any other path: ``config.model_type`` when that is a SAM
    2.1 type, else the size the file's Hiera trunk tells (``sam2_file_size``: keys and shapes only, no weights
    read), else ``None`` (SAM, its size read from the file when it loads).
    """
    config = config_or(config, SegmenterConfig(), "SegmenterConfig(fast=False)")
    source = str(model_type_or_path if model_type_or_path is not None else config.model_type)
    by_name = _sam2_type_by_name(source)
    if by_name is not None:
        return by_name
    if _model_type_and_source(source)[0] is not None:
        return None
    if config.model_type in SAM2_MODEL_TYPES:
        return config.model_type
    return sam2_file_size(source)


def _sam2_type_by_name(source: str) -> str | None:
    """A SAM 2.1 model type, or that of a released SAM 2.1 file's name (``/w/sam2.1_hiera_tiny.pt``), else None."""
    if source in SAM2_MODEL_TYPES:
        return source
    for model_type in SAM2_MODEL_TYPES:
        spec = weight_table.WEIGHTS.get(model_type)
        if spec is not None and Path(source).name == spec.basename:
            return model_type
    return None


def uses_sam2(
    model_type_or_path: str | os.PathLike | None, config: SegmenterConfig | None = None
) -> bool:
    """Whether ``load_segmenter(model_type_or_path, config=config)`` loads SAM 2.1 (rather than SAM): see
    ``sam2_model_type`` (which may read a file's keys)."""
    return sam2_model_type(model_type_or_path, config) is not None


def segmenter_weights(
    model_type_or_path: str | os.PathLike | None = None,
    *,
    config: SegmenterConfig | None = None,
    checkpoints_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """The verified weight file ``load_segmenter(model_type_or_path, config=config)`` would load, found (or
    downloaded) by ``hub.resolve`` as that load does, without building or loading any model: a caller finds out that
    a file is missing before it does slower work.

    Raises:
        FileNotFoundError, WeightsError: as ``hub.resolve``.
    """
    config = config_or(config, SegmenterConfig(), "SegmenterConfig(fast=False)")
    source = model_type_or_path if model_type_or_path is not None else config.model_type
    if not uses_sam2(source, config):  # vit_h -> sam_vit_h; SAM 2.1 types are table keys already
        source = _model_type_and_source(source)[1]
    return hub.resolve(source, role="sam", checkpoints_dir=checkpoints_dir, cache_dir=cache_dir)


def check_segmenter_packages(
    model_type_or_path: str | os.PathLike | None, config: SegmenterConfig | None = None
) -> None:
    """Raise ``MissingPackageError`` now if ``load_segmenter`` would need a package that is not installed (``sam2``
    for SAM 2.1, decided as the loader decides: ``sam2_model_type``, so a renamed SAM 2.1 file counts), so that a
    caller can say so before slower work (loading the tracker, a download). At most a file's index is read."""
    if uses_sam2(model_type_or_path, config):
        missing = sam2_missing_message()
        if missing is not None:
            raise MissingPackageError(missing)


def check_segmenter_file(
    model_type_or_path: str | os.PathLike | None, config: SegmenterConfig | None = None
) -> None:
    """Raise ``WeightsError`` now if ``load_segmenter(model_type_or_path, config=config)`` would load a SAM
    checkpoint file that no SAM it builds can take (a SAM 2 file of no SAM 2.1 size, a SAM image encoder of no
    released width, no SAM image encoder at all), so that a caller says so before loading the tracker. Reads the
    file's keys and shapes only (``weight_loading.peek_checkpoint``); names, released file names, SAM 2.1 files
    and files that cannot be mapped pass (the load reads or reports them)."""
    config = config_or(config, SegmenterConfig(), "SegmenterConfig(fast=False)")
    source = model_type_or_path if model_type_or_path is not None else config.model_type
    if uses_sam2(source, config) or _model_type_and_source(source)[0] is not None:
        return
    if not Path(source).is_file():
        return
    state = weight_loading.peek_checkpoint(source)
    if state is None:
        return
    if _is_sam2_state(state):
        raise WeightsError(sam2_state_advice(state.get("model", state), source))
    _model_type_of(state, source)


def _model_type_of(state: dict, path: str | os.PathLike) -> str:
    """SAM size from the image encoder's width in a state dict (768 / 1024 / 1280).

    Raises:
        WeightsError: no SAM image encoder in ``state``, or one of another width (no model type would fit it).
    """
    weight = state.get(_ENCODER_KEY)
    if weight is None:
        raise WeightsError(
            f"{path} holds no SAM image encoder (no {_ENCODER_KEY}) and no SAM 2 model: it is not a SAM or SAM "
            "2.1 checkpoint. Give a SAM (vit_b, vit_l, vit_h) or SAM 2.1 checkpoint, or one of those model names."
        )
    width = int(weight.shape[0])
    if width not in _EMBED_DIMS:
        sizes = " / ".join(f"{model_type} {dim}" for dim, model_type in _EMBED_DIMS.items())
        raise WeightsError(
            f"{path} holds a SAM image encoder {width} wide; uvosam builds SAM of the released widths only "
            f"({sizes}), so no model type fits it. Give a checkpoint of one of those sizes (or SAM 2.1)."
        )
    model_type = _EMBED_DIMS[width]
    logger.info("%s holds SAM %s (by its image encoder's width)", path, model_type)
    return model_type


def plain_encode(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SAM's own encoder forward: (B, 3, S, S) preprocessed images -> (B, C, S/16, S/16)."""
    return encoder(x)


def sdpa_encode(encoder: ImageEncoderViT, x: torch.Tensor) -> torch.Tensor:
    """SAM's encoder forward in ``x``'s dtype (float32) with attention through SDPA (``uvosam.sam_fast``): what the
    default (``SegmenterConfig.fast=None``) runs on a CUDA GPU without native bf16 (a T4, a V100), where SAM's own
    attention holds about three attention-sized tensors per global block (ViT-H: about 3 GB a frame) and SDPA's
    memory-efficient kernel takes float32 with the rel-pos bias. Equal to ``plain_encode`` up to float rounding (the
    whole encoder to 1e-4 on the tiny SAM, tested)."""
    return sam_fast.encoder_forward(encoder, x)


def fast_encode(encoder: ImageEncoderViT, x: torch.Tensor) -> torch.Tensor:
    """The fast path's encoder forward: SDPA attention under bf16 autocast on ``x``'s device.

    Args:
        x: (B, 3, S, S) preprocessed images.

    Returns:
        (B, C, S/16, S/16) embeddings (dtype as autocast leaves it; the caller casts).
    """
    with fast_path_autocast(x):
        return sam_fast.encoder_forward(encoder, x)


def _mismatch_hint(model_type: str, by_name: bool) -> str:
    """What to do about a SAM checkpoint that does not fit SAM ``model_type``, chosen by the file's released name
    (``by_name``) or by its image encoder's width."""
    if by_name:
        return (
            f"Its file name is the released SAM {model_type} checkpoint's, which decides the model: give a file of "
            "another model another name (its size is then read from the file)."
        )
    return (
        f"SAM {model_type} was chosen by its image encoder's width; uvosam builds SAM as released (vit_b, vit_l, "
        "vit_h), so a SAM of another depth or layout cannot be loaded."
    )


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
        weights_name: the weights ``sam`` holds (a ``weight_table.WEIGHTS`` key or a file name), for exports'
            ``run.json`` (``describe``); ``from_pretrained`` sets it, ``None`` = not known.
    """

    family = "SAM"

    def __init__(
        self,
        sam: Sam,
        config: SegmenterConfig | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        weights_name: str | None = None,
    ) -> None:
        self.config = config_or(config, SegmenterConfig(), "SegmenterConfig(fast=False)")
        self.weights_name = weights_name
        if device is not None:
            sam.to(resolve_device(device))
        if dtype is not None:
            sam.image_encoder.to(dtype)
        self.model = sam
        self.device = sam.device
        self.encoder_dtype = next(sam.image_encoder.parameters()).dtype
        self.decoder_dtype = sam.mask_decoder.iou_token.weight.dtype
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        fast = self._fast_by_default()
        if fast and not isinstance(sam.image_encoder, ImageEncoderViT):
            _warn_once(
                "fast-encoder",
                "SegmenterConfig.fast needs a ViT image encoder; using the plain forward.",
            )
            fast = False
        self.fast = fast
        # the default on a GPU without native bf16: SDPA in float32 (an explicit fp32 keeps SAM's own forward)
        self.sdpa_float32 = (
            not fast
            and self.config.fast is None
            and self.device.type == "cuda"
            and isinstance(sam.image_encoder, ImageEncoderViT)
        )
        self._encode_fn = (
            fast_encode if fast else sdpa_encode if self.sdpa_float32 else plain_encode
        )
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
            model_type_or_path: ``"vit_b"|"vit_l"|"vit_h"``, a ``weight_table.WEIGHTS`` key (``"sam_vit_h"``)
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
        config = config_or(config, SegmenterConfig(), "SegmenterConfig(fast=False)")
        source = model_type_or_path if model_type_or_path is not None else config.model_type
        if str(source) in SAM2_MODEL_TYPES:  # before downloading a file this class cannot load
            raise InputError(
                f"{source} is a SAM 2.1 model; load it with uvosam.segmenter.load_segmenter (which picks the class) "
                f"or uvosam.sam2_segmenter.Sam2BoxSegmenter.from_pretrained"
            )
        model_type, source = _model_type_and_source(source)
        path = hub.resolve(source, role="sam", checkpoints_dir=checkpoints_dir, cache_dir=cache_dir)
        state = weight_loading.load_checkpoint(path)
        if _is_sam2_state(state):
            raise WeightsError(sam2_state_advice(state.get("model", state), path))
        by_name = model_type is not None
        model_type = model_type or _model_type_of(state, path)
        sam = sam_model_registry[model_type](checkpoint=None)
        hint = _mismatch_hint(model_type, by_name)
        weight_loading.load_into(sam, state, path, f"SAM {model_type}", hint)
        logger.info("loaded SAM %s from %s", model_type, path)
        segmenter = cls(
            sam.eval(), replace(config, model_type=model_type), device=device, dtype=dtype,
            weights_name=weight_table.weights_label(source),
        )  # fmt: skip
        segmenter.keep_matmul_weights_bf16()  # the model is its own
        return segmenter

    def _matmul_modules(self) -> list[torch.nn.Module]:
        """The image encoder: the fast path (``fast_encode``) runs all of it under bf16 autocast."""
        return [self.model.image_encoder]

    def _graph_blocker(self) -> str | None:
        """SAM's own encoder forward (``plain_encode``: the fast path off, ``fast=False``, or an encoder that is no
        ``ImageEncoderViT``) cannot be captured: segment_anything's ``get_rel_pos`` builds its indices on the CPU, a
        host-to-device copy and a stream synchronise inside the capture."""
        if self._encode_fn is plain_encode:
            return (
                "SAM's own encoder forward (the fast path off) copies indices from the CPU on every call, which "
                "a CUDA graph cannot hold"
            )
        return None

    def _released_type(self) -> str | None:
        """``vit_b`` / ``vit_l`` / ``vit_h`` by the image encoder's width and depth, else ``None``."""
        encoder = self.model.image_encoder
        if not isinstance(encoder, ImageEncoderViT):
            return None
        return _VIT_SIZES.get((encoder.patch_embed.proj.out_channels, len(encoder.blocks)))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The CPU part of encoding ``image`` ((H, W, 3) uint8 RGB), done ahead of time by the pipeline
        (``config.prepare_ahead``): the frame resized to the encoder's input, longest side ``img_size`` (SAM's
        ``ResizeLongestSide``, PIL bilinear), (H', W', 3) uint8. Thread-safe."""
        return self.transform.apply_image(image)

    def _encode(
        self, images: list[np.ndarray], prepared: list[np.ndarray | None]
    ) -> list[tuple[torch.Tensor, tuple[int, int]]]:
        """Images (each with its ``prepare`` result or None) -> per image ((1, C, h, w) embedding in the decoder
        dtype, (H', W') resized size)."""
        batch, input_sizes = [], []
        for image, ready in zip(images, prepared, strict=True):
            resized = self.prepare(image) if ready is None else self._checked_prepared(image, ready)
            pixels = (
                torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
            )
            batch.append(self.model.preprocess(pixels))
            input_sizes.append(resized.shape[:2])
        x = torch.cat(batch).to(self.encoder_dtype)
        embeddings = self._run_encoder(self.model.image_encoder, x).to(self.decoder_dtype)
        return [(embeddings[j : j + 1], size) for j, size in enumerate(input_sizes)]

    def _checked_prepared(self, image: np.ndarray, ready: np.ndarray) -> np.ndarray:
        """``ready`` if it has the size ``prepare(image)`` has (a mismatch would give masks of another frame's
        geometry); else ValueError."""
        h, w = image.shape[:2]
        size = self.transform.get_preprocess_shape(h, w, self.transform.target_length)
        if (
            not isinstance(ready, np.ndarray)
            or ready.shape != (*size, 3)
            or ready.dtype != np.uint8
        ):
            raise ValueError(
                f"{type(self).__name__}: a prepared frame must be prepare(image)'s ({size[0]}, {size[1]}, 3) uint8 "
                f"array for a {h}x{w} frame; got {getattr(ready, 'shape', type(ready).__name__)}"
            )
        return ready

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
