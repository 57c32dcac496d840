"""SAM 2.1 as the box-to-mask stage: ``Sam2BoxSegmenter``, a drop-in for ``BoxPromptSegmenter``.

UVOSAM prompts an image segmenter with the tracker's boxes frame by frame; SAM 2.1's image path does the same job
with a Hiera encoder (the SAM 2 paper's abstract: more accurate and 6x faster than SAM on images, for its main
Hiera-B+ model against SAM ViT-H; not measured here on a GPU). Only the image path is used: every frame is
segmented on its own from its boxes, exactly as with SAM, so the tracker alone decides identities (no SAM 2
memory, no propagation between frames).

What it computes equals ``sam2.sam2_image_predictor.SAM2ImagePredictor`` with ``multimask_output=False`` on a
model from ``sam2.build_sam.build_sam2`` (bit for bit on CPU, tested on a tiny random model):

* the frame is scaled to ``image_size`` x ``image_size`` (no aspect kept: torchvision's bilinear ``resize`` with
  antialias on the [0, 1] float image), then normalised with ImageNet mean/std;
* ``SAM2Base.forward_image`` once for all boxes; the lowest-resolution map gets ``no_mem_embed`` added (the
  model's ``directly_add_no_mem_embed``), the two higher-resolution maps go to the decoder as ``high_res_features``;
* each box is two corner points with labels 2 and 3, in pixels of the ``image_size`` frame (x / W * S, y / H * S);
* one mask per box from the mask decoder (with SAM 2.1's "dynamic multimask via stability" fallback that
  ``build_sam2`` switches on), bilinearly upsampled to the frame, ``logits > mask_threshold``.

Boxes are clipped, degenerate boxes skipped and overlaps resolved exactly as for SAM (``BoxSegmenterBase``).
Fast path (``SegmenterConfig.fast``; on by default on GPUs (compute capability 8.0 on) and CPUs with
native bf16): ``forward_image`` under
bf16 autocast (SAM 2's attention is already ``scaled_dot_product_attention``); ``from_pretrained``'s own model keeps
the Linear/Conv2d weights that run there in bf16 (``keep_matmul_weights_bf16``: bit-identical masks). Needs the
``sam2`` package (``SAM2_INSTALL``; it is in uvosam's ``sam2`` extra, in ``requirements.txt`` and in the test extra).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.functional import resize

from uvosam import hub, weight_loading, weight_table
from uvosam.box_segmenter import BoxSegmenterBase, fast_path_autocast, resolve_device
from uvosam.config import SAM2_MODEL_TYPES, SAM_MODEL_TYPES, SegmenterConfig, config_or
from uvosam.errors import InputError, MissingPackageError, WeightsError

logger = logging.getLogger(__name__)

SAM2_CONFIGS = {
    "sam2.1_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
"""Model type -> the sam2 package's Hydra config of that architecture."""

# what sam2.build_sam.build_sam2 adds by default (apply_postprocessing=True), i.e. what its image predictor uses
_POSTPROCESSING = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
_HIERA_SIZES = {
    (96, 12): "sam2.1_tiny",
    (96, 16): "sam2.1_small",
    (112, 24): "sam2.1_base_plus",
    (144, 48): "sam2.1_large",
}
"""(Hiera trunk width, number of blocks) -> the released model type of that size (the sam2 package's configs)."""
_SAM2_1_KEYS = (
    "no_obj_embed_spatial",
    "obj_ptr_tpos_proj.weight",
)  # parameters SAM 2.1 added to SAM 2's model
SAM2_REQUIREMENT = "sam2==1.1.0"
"""The sam2 release uvosam pins (as ``pyproject.toml`` and ``requirements.txt`` do): PyPI's ``sam2`` is a third
party's upload, and its 1.1.0 is the one checked to be Meta's code (docs/mask_models.md, Installing sam2)."""
SAM2_INSTALL = f"pip install {SAM2_REQUIREMENT}"
"""The install command every message gives (never a bare ``pip install sam2``, which takes any later upload)."""
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def sam2_missing_message() -> str | None:
    """Why SAM 2 models cannot be used here (the ``sam2`` package is missing), or ``None`` when they can."""
    import importlib.util

    if importlib.util.find_spec("sam2") is None:
        return (
            "SAM 2.1 models need the sam2 package, which is not installed. Install it with "
            f"'{SAM2_INSTALL}' (or pip install -e \".[sam2]\" in a uvosam checkout), or choose a SAM "
            "model (vit_b, vit_l, vit_h)."
        )
    return None


def sam2_config(model_type: str, overrides: Sequence[str] = ()):
    """The resolved Hydra config (an ``omegaconf.DictConfig``) of ``model_type`` from the sam2 package, with
    SAM 2.1's image-predictor post-processing settings, then ``overrides`` (``++model.image_size=512``).

    Raises:
        MissingPackageError: the sam2 package is missing (the message says how to install it).
        ValueError: an unknown model type.
    """
    if model_type not in SAM2_CONFIGS:
        raise InputError(
            f"unknown SAM 2 model type {model_type!r}; expected one of {SAM2_MODEL_TYPES}"
        )
    missing = sam2_missing_message()
    if missing is not None:
        raise MissingPackageError(missing)
    try:
        import sam2  # noqa: F401  (registers its configs with Hydra)
        from hydra import compose
        from omegaconf import OmegaConf
    except ImportError as err:  # installed, but it or what it imports is broken
        raise MissingPackageError(
            f"the sam2 package is installed but cannot be imported ({type(err).__name__}: {err}). Reinstall it "
            f"with its dependencies: pip install --force-reinstall {SAM2_REQUIREMENT} (hydra-core, omegaconf and "
            "iopath come with it)."
        ) from err

    cfg = compose(config_name=SAM2_CONFIGS[model_type], overrides=[*_POSTPROCESSING, *overrides])
    OmegaConf.resolve(cfg)
    return cfg


def build_sam2_model(model_type: str, overrides: Sequence[str] = ()) -> torch.nn.Module:
    """The random-weight ``SAM2Base`` of ``model_type`` built from ``sam2_config``, in eval mode on CPU.

    Raises:
        MissingPackageError, ValueError: as ``sam2_config``.
    """
    from hydra.utils import instantiate

    return instantiate(sam2_config(model_type, overrides).model, _recursive_=True).eval()


def plain_forward(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """``SAM2Base.forward_image``: (B, 3, S, S) normalised images -> ``{"backbone_fpn": [maps]}``, the part of its
    backbone output dict the segmenter reads (``_features``)."""
    return _features(model.forward_image(x))


def fast_forward(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """``plain_forward`` under bf16 autocast on ``x``'s device (the caller casts the features back)."""
    with fast_path_autocast(x):
        return _features(model.forward_image(x))


def _features(backbone_out: dict) -> dict:
    """``forward_image``'s output without what box prompting never reads: ``vision_pos_enc`` (the position encodings
    of the memory attention, which video tracking uses) and ``vision_features`` (``backbone_fpn``'s last map again).
    A CUDA-graph replay (``SegmenterConfig.cuda_graph``) clones each tensor of the output: about 88 MB a frame fewer
    (at 1024x1024, measured)."""
    return {"backbone_fpn": backbone_out["backbone_fpn"]}


def sam2_size_of(state: dict) -> str | None:
    """The SAM 2.1 model type whose Hiera trunk has the width and depth of a SAM 2 state dict, else ``None``."""
    weight = state.get("image_encoder.trunk.patch_embed.proj.weight")
    prefix = "image_encoder.trunk.blocks."
    blocks = {key[len(prefix) :].split(".")[0] for key in state if str(key).startswith(prefix)}
    return None if weight is None else _HIERA_SIZES.get((int(weight.shape[0]), len(blocks)))


def has_hiera_trunk(state: dict) -> bool:
    """A SAM 2 (2.0 or 2.1) state dict: its image encoder is a Hiera trunk (``image_encoder.trunk.*``)."""
    return any(str(key).startswith("image_encoder.trunk.") for key in state)


def _is_sam2_0(state: dict) -> bool:
    """A SAM 2 state dict of the first release (2.0): a Hiera trunk without the parameters SAM 2.1 added."""
    return has_hiera_trunk(state) and not any(key in state for key in _SAM2_1_KEYS)


def sam2_1_size_of(state: dict) -> str | None:
    """The released SAM 2.1 model type of a state dict by its Hiera trunk's width and depth, else ``None`` (no Hiera
    trunk, SAM 2.0, another size)."""
    if not has_hiera_trunk(state) or _is_sam2_0(state):
        return None
    return sam2_size_of(state)


def sam2_state_advice(state: dict, path: str | os.PathLike) -> str:
    """The error text for a SAM 2 state dict given where SAM was expected: which SAM 2 it is and how to load it."""
    size = sam2_size_of(state)
    if _is_sam2_0(state):
        return _sam2_0_text(path, size)
    if size is None:
        how = (
            f"SegmenterConfig(model_type=...) with the size it holds (one of {', '.join(SAM2_MODEL_TYPES)}; "
            "command line: --sam-type)"
        )
    else:
        how = f"SegmenterConfig(model_type='{size}') (its Hiera size; command line: --sam-type {size})"
    return (
        f"{path} is a SAM 2 checkpoint, not a SAM one. Load it as SAM 2.1 with {how}; "
        f"uvosam.segmenter.load_segmenter and UVOSAM.from_pretrained then pick the right class."
    )


def _sam2_0_text(path: str | os.PathLike, size: str | None) -> str:
    """The error text for a SAM 2.0 checkpoint: get the SAM 2.1 file of its size (``size``, ``None``: unknown)."""
    if size is None:
        get = (
            "sam2.1_hiera_{tiny,small,base_plus,large}.pt from the Hub repos facebook/sam2.1-hiera-{tiny,small,"
            "base-plus,large}, or pass that model type, which downloads it"
        )
    else:
        spec = weight_table.WEIGHTS[size]
        get = f"run {hub.download_command(spec)}, or pass the model type {size}, which downloads it"
    return (
        f"{path} is a SAM 2 checkpoint of the first release (2.0); uvosam loads SAM 2.1 checkpoints only. Get the "
        f"SAM 2.1 file of the same size: {get}."
    )


def check_sam2_state(state: dict, path: str | os.PathLike, model_type: str) -> None:
    """Say what a state dict is when it cannot be SAM 2.1 ``model_type`` (before a load that would only list keys).

    Raises:
        WeightsError: a SAM (ViT) checkpoint, a SAM 2.0 one, or SAM 2.1 of another size (by its Hiera trunk).
    """
    if "image_encoder.patch_embed.proj.weight" in state:
        raise WeightsError(
            f"{path} is a SAM checkpoint (ViT image encoder), not a SAM 2.1 one. Load it as SAM: the model type "
            "vit_b, vit_l or vit_h, or the path alone (its size is read from the file); on the command line "
            "drop --sam-type."
        )
    size = sam2_size_of(state)
    if _is_sam2_0(state):
        raise WeightsError(_sam2_0_text(path, size))
    if size is not None and size != model_type:
        raise WeightsError(
            f"{path} holds SAM 2.1 {size} (by its Hiera trunk's width and depth), not {model_type}: pass "
            f"SegmenterConfig(model_type='{size}') (command line: --sam-type {size})."
        )


def _model_type_and_source(model_type_or_path: str | os.PathLike) -> tuple[str | None, str]:
    """(model type, name or path for ``hub.resolve``): ``"sam2.1_tiny"`` -> both that; a path -> (the type of its
    known basename (``sam2.1_hiera_tiny.pt``), else ``None``; the path)."""
    name = str(model_type_or_path)
    if name in SAM2_MODEL_TYPES:
        return name, name
    for model_type in SAM2_MODEL_TYPES:
        spec = weight_table.WEIGHTS.get(model_type)
        if spec is not None and os.path.basename(name) == spec.basename:
            return model_type, name
    return None, name


class Sam2BoxSegmenter(BoxSegmenterBase):
    """Box-prompted SAM 2.1 image segmentation: ``segment(image, boxes_xyxy) -> SegmentOutput``; read-only once
    built, so one instance serves all threads.

    Args:
        model: a ``sam2.modeling.sam2_base.SAM2Base`` (any size). Only read, except that ``device``/``dtype``
            given here move/cast it in place once.
        config: ``SegmenterConfig`` (``model_type`` is informative here; the model decides).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; ``None`` keeps the model where it is.
        dtype: weight dtype of the image encoder (and of the two convolutions ``forward_image`` applies to its
            output); ``None`` keeps it. The prompt encoder and mask decoder stay as they are.
        weights_name: the weights ``model`` holds (a ``weight_table.WEIGHTS`` key or a file name), for exports'
            ``run.json`` (``describe``); ``from_pretrained`` sets it, ``None`` = not known.
    """

    family = "SAM 2.1"

    def __init__(
        self,
        model: torch.nn.Module,
        config: SegmenterConfig | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        weights_name: str | None = None,
    ) -> None:
        self.config = config_or(
            config,
            SegmenterConfig(model_type="sam2.1_large"),
            'SegmenterConfig(model_type="sam2.1_tiny")',
        )
        self.weights_name = weights_name
        if device is not None:
            model.to(resolve_device(device))
        if dtype is not None:
            model.image_encoder.to(dtype)
            if model.use_high_res_features_in_sam:
                model.sam_mask_decoder.conv_s0.to(dtype)
                model.sam_mask_decoder.conv_s1.to(dtype)
        self.model = model
        self.device = model.device
        self.image_size = int(model.image_size)
        self.encoder_dtype = next(model.image_encoder.parameters()).dtype
        self.decoder_dtype = next(model.sam_mask_decoder.parameters()).dtype
        self.fast = self._fast_by_default()
        self._encode_fn = fast_forward if self.fast else plain_forward
        self._mean = torch.tensor(_MEAN, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(_STD, device=self.device).view(3, 1, 1)
        # a box's two corner points are labelled 2 and 3 (SAM 2's point labels); made once: an upload per decoder
        # call would wait for the GPU to finish the encoder first
        self._box_labels = torch.tensor([[2, 3]], dtype=torch.int, device=self.device)
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
    ) -> Sam2BoxSegmenter:
        """Build SAM 2.1 from the sam2 package's config and load verified weights (weights-only load).

        Args:
            model_type_or_path: ``sam2.1_tiny|sam2.1_small|sam2.1_base_plus|sam2.1_large`` (also the
                ``weight_table.WEIGHTS`` key) or a checkpoint path (its architecture from its released basename, e.g.
                ``sam2.1_hiera_small.pt``, else ``config.model_type``); ``None`` = ``config.model_type``.
            device, dtype: as in the constructor (``"auto"`` = CUDA if available).
            checkpoints_dir, cache_dir: passed to ``hub.resolve``.

        Raises:
            MissingPackageError: the sam2 package is missing.
            FileNotFoundError: weights not found (the message says where it looked and how to get them).
            WeightsError: unreadable file, or weights that do not fit the architecture (a SAM or SAM 2.0
                checkpoint, or SAM 2.1 of another size, is named as such).
            ValueError: a SAM model name (``vit_b``, ``sam_vit_h``), or a path whose size neither its name nor
                ``config.model_type`` gives.
        """
        config = config_or(
            config,
            SegmenterConfig(model_type="sam2.1_large"),
            'SegmenterConfig(model_type="sam2.1_tiny")',
        )
        source = model_type_or_path if model_type_or_path is not None else config.model_type
        if str(source) in SAM_MODEL_TYPES or str(source) in {f"sam_{t}" for t in SAM_MODEL_TYPES}:
            raise InputError(
                f"{source} is a SAM model, not SAM 2.1; load it with uvosam.segmenter.load_segmenter (which picks "
                f"the class) or uvosam.segmenter.BoxPromptSegmenter.from_pretrained"
            )
        model_type, source = _model_type_and_source(source)
        if model_type is None:
            if config.model_type not in SAM2_MODEL_TYPES:
                raise InputError(
                    f"cannot tell which SAM 2.1 model {source} holds from its name; pass "
                    f"config=SegmenterConfig(model_type=...) with one of {SAM2_MODEL_TYPES}"
                )
            model_type = config.model_type
        missing = sam2_missing_message()
        if missing is not None:  # before a download of up to 900 MB that could not be used
            raise MissingPackageError(missing)
        path = hub.resolve(source, role="sam", checkpoints_dir=checkpoints_dir, cache_dir=cache_dir)
        state = weight_loading.load_checkpoint(path)
        state = state.get("model", state)  # released files: {"model": state_dict}
        check_sam2_state(state, path, model_type)
        model = build_sam2_model(model_type)
        hint = (
            f"Pass the SAM 2.1 size it holds: SegmenterConfig(model_type=...) with one of "
            f"{', '.join(SAM2_MODEL_TYPES)} (command line: --sam-type)."
        )
        weight_loading.load_into(model, state, path, f"SAM 2.1 {model_type}", hint)
        logger.info("loaded SAM 2.1 %s from %s", model_type, path)
        segmenter = cls(
            model, replace(config, model_type=model_type), device=device, dtype=dtype,
            weights_name=weight_table.weights_label(source),
        )  # fmt: skip
        segmenter.keep_matmul_weights_bf16()  # the model is its own
        return segmenter

    def _preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (3, S, S) float32: [0, 1], resized to S x S (bilinear, antialias), normalised."""
        pixels = torch.as_tensor(image, device=self.device).permute(2, 0, 1).float().div(255)
        pixels = resize(pixels, [self.image_size, self.image_size], antialias=True)
        return (pixels - self._mean) / self._std

    def _matmul_modules(self) -> list[torch.nn.Module]:
        """What ``forward_image`` runs, all under bf16 autocast on the fast path (``fast_forward``): the image
        encoder and, with high-resolution features, the mask decoder's ``conv_s0`` / ``conv_s1`` (used nowhere
        else)."""
        modules = [self.model.image_encoder]
        if self.model.use_high_res_features_in_sam:
            modules += [self.model.sam_mask_decoder.conv_s0, self.model.sam_mask_decoder.conv_s1]
        return modules

    def _released_type(self) -> str | None:
        """The SAM 2.1 type by the Hiera trunk's width and depth (``sam2_size_of``), else ``None``."""
        return sam2_size_of(self.model.state_dict())

    def _encode(
        self, images: list[np.ndarray], prepared: list[None]
    ) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Images -> per image ((1, C, s, s) image embedding, [(1, C_l, s_l, s_l) higher-resolution maps]), all
        in the decoder's dtype."""
        x = torch.stack([self._preprocess(image) for image in images]).to(self.encoder_dtype)
        backbone_out = self._run_encoder(self.model, x)
        levels = [
            m.to(self.decoder_dtype)
            for m in backbone_out["backbone_fpn"][-self.model.num_feature_levels :]
        ]
        embedding = levels[-1]
        if self.model.directly_add_no_mem_embed:
            embedding = embedding + self.model.no_mem_embed.view(1, -1, 1, 1).to(embedding.dtype)
        return [
            (embedding[j : j + 1], [level[j : j + 1] for level in levels[:-1]])
            for j in range(len(images))
        ]

    def _decode_boxes(
        self,
        features: tuple[torch.Tensor, list[torch.Tensor]],
        boxes_px: torch.Tensor,
        original_size: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """One mask-decoder call: (K, 4) original-pixel boxes -> ((K, H, W) bool masks, (K,) f32 IoU)."""
        embedding, high_res = features
        h, w = original_size
        corners = boxes_px.reshape(-1, 2, 2).clone()
        corners[..., 0] = corners[..., 0] / w
        corners[..., 1] = corners[..., 1] / h
        corners = corners * self.image_size
        labels = self._box_labels.repeat(len(corners), 1)
        prompt_encoder = self.model.sam_prompt_encoder
        sparse, dense = prompt_encoder(points=(corners, labels), boxes=None, masks=None)
        low_res, iou, _, _ = self.model.sam_mask_decoder(
            image_embeddings=embedding,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            repeat_image=len(corners) > 1,
            high_res_features=high_res or None,
        )
        logits = F.interpolate(low_res.float(), (h, w), mode="bilinear", align_corners=False)
        masks = logits[:, 0] > self.config.mask_threshold
        return masks.cpu().numpy(), iou[:, 0].float().cpu().numpy()
