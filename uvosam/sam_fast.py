"""A faster forward of SAM's ViT image encoder: attention through ``scaled_dot_product_attention``.

Same idea as pytorch-labs' segment-anything-fast: SAM's decomposed relative-position term
(``segment_anything.modeling.image_encoder.add_decomposed_rel_pos``, from MViTv2) is an additive
bias on the attention logits, so it can be handed to ``F.scaled_dot_product_attention`` as
``attn_mask`` and the fused kernels do the rest. These functions read the parameters of a
``segment_anything.modeling.ImageEncoderViT`` and compute what its ``forward`` computes; they never
modify the model or its classes, so one shared model can be run both ways at once.

Numerics: in float32 the result equals SAM's forward up to float rounding (tested: max abs
difference < 1e-4 on the tiny test encoder). Under bf16 autocast (what ``BoxPromptSegmenter`` uses
by default on GPUs and CPUs that compute bf16 natively) the encoder runs at bf16 precision: the masks' tested
tolerance is in ``uvosam.segmenter``'s docstring (per mask, at most 0.5% of the frame's pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import (
    Attention,
    Block,
    ImageEncoderViT,
    window_partition,
    window_unpartition,
)
from torch.utils.weak import WeakTensorKeyDictionary


def rel_pos_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """What SAM's ``get_rel_pos`` returns, ``(q_size, k_size, C)`` rows of ``rel_pos`` ((L, C), linearly resized to
    ``2 * max(q_size, k_size) - 1`` rows where L differs), with the index built on ``rel_pos``'s device.

    SAM builds it with ``torch.arange`` on the CPU and indexes the (CUDA) table with it: a pageable host-to-device
    copy, which PyTorch follows with a stream synchronise, twice per attention block (64 times per ViT-H frame), so
    the CPU could never queue kernels ahead of the GPU.
    """
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    table = rel_pos
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1),
            size=max_rel_dist,
            mode="linear",
        )
        table = resized.reshape(-1, max_rel_dist).permute(1, 0)
    device = rel_pos.device
    q_coords = torch.arange(q_size, device=device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return table[relative.long()]


_TABLES: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
"""Per ``rel_pos`` parameter: ``{(size, dtype): (its stamp, table)}`` (``cached_rel_pos_table``)."""


def tensor_stamp(t: torch.Tensor) -> tuple:
    """(storage address, version, device, dtype) of ``t``: what a result computed from it depends on. A tensor made in
    inference mode has no version counter (``None`` in its place): its address alone counts."""
    return (t.data_ptr(), None if t.is_inference() else t._version, t.device, t.dtype)


def cached_rel_pos_table(rel_pos: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``rel_pos_table(size, size, rel_pos).to(dtype)``, kept per parameter, size and dtype while inference runs.

    The table depends on the weights and the token grid only, yet building it is about half of the encoder's kernel
    launches (arange, arithmetic, index, cast: 9 per table, 64 tables a ViT-H frame). A kept table is used while the
    parameter's storage, version, device and dtype are those it was made from: ``load_state_dict``, ``p.copy_()``
    and other in-place writes through the parameter bump its version; a write the version does not see (through
    ``p.data``, a numpy view of it) needs ``clear_rel_pos_tables()``. Made afresh under autograd (a kept table made in
    inference mode cannot be saved for backward), in ``torch.compile``'s tracing (the compiler folds it in) and for
    a parameter made in inference mode (which has no version).
    """
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or rel_pos.is_inference():
        return rel_pos_table(size, size, rel_pos).to(dtype)
    stamp = tensor_stamp(rel_pos)
    kept = _TABLES.setdefault(rel_pos, {})
    entry = kept.get((size, dtype))
    if entry is None or entry[0] != stamp:
        entry = (stamp, rel_pos_table(size, size, rel_pos).to(dtype))
        kept[(size, dtype)] = entry
    return entry[1]


def kept_tables(module: torch.nn.Module) -> list[torch.Tensor]:
    """The tables ``cached_rel_pos_table`` keeps for the parameters of ``module`` (none for a model without SAM's
    rel-pos parameters): whatever captured them (a CUDA graph) holds these, so that ``clear_rel_pos_tables`` cannot
    free them under it."""
    tables = []
    for p in module.parameters():
        kept = _TABLES.get(p)
        if kept:
            tables += [table for _, table in kept.values()]
    return tables


def clear_rel_pos_tables() -> None:
    """Forget every kept table (``cached_rel_pos_table``): after changing a SAM encoder's weights in a way their
    version counter does not see, e.g. through ``param.data``."""
    _TABLES.clear()


def rel_pos_bias(attn: Attention, q: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """SAM's decomposed relative-position term as an additive attention bias.

    Args:
        attn: the ``Attention`` module (its ``rel_pos_h``/``rel_pos_w`` are used).
        q: (B, heads, H*W, head_dim) queries, NOT scaled (SAM adds the term computed from the raw
            q).
        hw: (H, W) token grid of q (= of k: the encoder only does self-attention).

    Returns:
        (B, heads, H*W, H*W) bias, dtype of q.
    """
    h, w = hw
    b, heads, _, dim = q.shape
    rh = cached_rel_pos_table(attn.rel_pos_h, h, q.dtype)
    rw = cached_rel_pos_table(attn.rel_pos_w, w, q.dtype)
    r_q = q.reshape(b * heads, h, w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(b, heads, h * w, h * w)


def sdpa_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """What ``Attention.forward`` computes, with ``F.scaled_dot_product_attention``.

    Args:
        x: (B, H, W, C) tokens.

    Returns:
        (B, H, W, C).
    """
    b, h, w, _ = x.shape
    qkv = attn.qkv(x).reshape(b, h * w, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    bias = rel_pos_bias(attn, q, (h, w)) if attn.use_rel_pos else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    out = out.permute(0, 2, 1, 3).reshape(b, h, w, -1)
    return attn.proj(out)


def block_forward(block: Block, x: torch.Tensor) -> torch.Tensor:
    """What ``Block.forward`` computes (pre-norm, optional windows), attention via SDPA.

    Args:
        x: (B, H, W, C) tokens.
    """
    shortcut = x
    x = block.norm1(x)
    if block.window_size > 0:
        hw = (x.shape[1], x.shape[2])
        x, pad_hw = window_partition(x, block.window_size)
    x = sdpa_attention(block.attn, x)
    if block.window_size > 0:
        x = window_unpartition(x, block.window_size, pad_hw, hw)
    x = shortcut + x
    return x + block.mlp(block.norm2(x))


def encoder_forward(encoder: ImageEncoderViT, x: torch.Tensor) -> torch.Tensor:
    """What ``ImageEncoderViT.forward`` computes, attention via SDPA.

    Args:
        x: (B, 3, S, S) preprocessed images (``Sam.preprocess``: normalised, zero-padded to
            ``img_size``).

    Returns:
        (B, out_chans, S/16, S/16) image embeddings.
    """
    x = encoder.patch_embed(x)
    if encoder.pos_embed is not None:
        x = x + encoder.pos_embed
    for block in encoder.blocks:
        x = block_forward(block, x)
    return encoder.neck(x.permute(0, 3, 1, 2))
