"""Single-stage deformable transformer with iterative box refinement (Deformable DETR, Zhu et al.
2021), as used by IDOL (Wu et al. 2022). Inference port: post-norm layers, dropout omitted (identity
at eval).

Parameter names match the original (``level_embed``, ``encoder.layers.i.self_attn``,
``decoder.layers.i.cross_attn``, ``reference_points``). The per-layer box heads live on the detector
and are passed to ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from uvosam.tracker.deform_attn import MSDeformAttn


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``log(x / (1 - x))`` with x clamped to [0, 1] and both terms to >= eps (Deformable DETR)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


@dataclass(frozen=True)
class FlatLevels:
    """Feature levels flattened and concatenated in level order (S = sum_l H_l * W_l per frame).

    Attributes:
        src: (N, S, C) features.
        pos: (N, S, C) sine position embedding + ``level_embed[l]``.
        padding_mask: (N, S) bool, True on padding.
        spatial_shapes: (L, 2) int64 ``(H_l, W_l)``, on the features' device.
        level_start_index: (L,) int64.
        valid_ratios: (N, L, 2) float ``(valid_w / W_l, valid_h / H_l)``.
        shapes: the same L ``(H_l, W_l)`` as Python ints, read without a device round trip (``.tolist()`` of a
            CUDA tensor waits for the GPU to finish everything queued: here, the backbone).
    """

    src: torch.Tensor
    pos: torch.Tensor
    padding_mask: torch.Tensor
    spatial_shapes: torch.Tensor
    level_start_index: torch.Tensor
    valid_ratios: torch.Tensor
    shapes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TransformerOutput:
    """Attributes:
    memory: (N, S, C) encoder output.
    hs: (num_dec_layers, N, Q, C) decoder output after every layer.
    init_reference: (N, Q, 2) sigmoid reference points fed to decoder layer 0.
    inter_references: (num_dec_layers, N, Q, 4) refined boxes ``(cx, cy, w, h)`` after every layer
        (the last one is the final box prediction)."""

    memory: torch.Tensor
    hs: torch.Tensor
    init_reference: torch.Tensor
    inter_references: torch.Tensor


class EncoderLayer(nn.Module):
    """Deformable self-attention + FFN, post-norm."""

    def __init__(
        self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: torch.Tensor, refs: torch.Tensor, levels: FlatLevels) -> torch.Tensor:
        """src (N, S, C), refs (N, S, L, 2) -> (N, S, C)."""
        attn = self.self_attn(
            src + levels.pos,
            refs,
            src,
            levels.spatial_shapes,
            levels.level_start_index,
            levels.padding_mask,
        )
        src = self.norm1(src + attn)
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    """Self-attention -> deformable cross-attention -> FFN, post-norm.

    Naming follows the original: ``cross_attn``+``norm1``, ``self_attn``+``norm2``, FFN+``norm3``.
    """

    def __init__(
        self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int
    ) -> None:
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: torch.Tensor,
        query_pos: torch.Tensor,
        refs: torch.Tensor,
        memory: torch.Tensor,
        levels: FlatLevels,
    ) -> torch.Tensor:
        """tgt/query_pos (N, Q, C), refs (N, Q, L, 2|4), memory (N, S, C) -> (N, Q, C)."""
        q = k = tgt + query_pos
        tgt = self.norm2(tgt + self.self_attn(q, k, tgt, need_weights=False)[0])
        attn = self.cross_attn(
            tgt + query_pos,
            refs,
            memory,
            levels.spatial_shapes,
            levels.level_start_index,
            levels.padding_mask,
        )
        tgt = self.norm1(tgt + attn)
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Encoder(nn.Module):
    """Stack of ``EncoderLayer``; every token's reference point is its own pixel centre."""

    def __init__(self, layers: Sequence[EncoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, levels: FlatLevels) -> torch.Tensor:
        """-> memory (N, S, C)."""
        refs = encoder_reference_points(levels.shapes, levels.valid_ratios)
        out = levels.src
        for layer in self.layers:
            out = layer(out, refs, levels)
        return out


class Decoder(nn.Module):
    """Stack of ``DecoderLayer``; boxes are refined after each layer by the detector's box heads."""

    def __init__(self, layers: Sequence[DecoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(
        self,
        tgt: torch.Tensor,
        query_pos: torch.Tensor,
        reference: torch.Tensor,
        memory: torch.Tensor,
        levels: FlatLevels,
        bbox_embed: Sequence[nn.Module],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode.

        Args:
            tgt, query_pos: (N, Q, C). reference: (N, Q, 2) sigmoid points. memory: (N, S, C).
            bbox_embed: one box MLP per layer (C -> 4 deltas in inverse-sigmoid space).

        Returns:
            hs (num_layers, N, Q, C) and refined boxes (num_layers, N, Q, 4) ``(cx, cy, w, h)``.
        """
        vr = levels.valid_ratios
        hs, refs_out = [], []
        for layer, box_head in zip(self.layers, bbox_embed, strict=True):
            scale = vr if reference.shape[-1] == 2 else torch.cat([vr, vr], -1)
            tgt = layer(tgt, query_pos, reference[:, :, None] * scale[:, None], memory, levels)
            delta = box_head(tgt)
            if reference.shape[-1] == 4:
                boxes = (delta + inverse_sigmoid(reference)).sigmoid()
            else:
                xy = delta[..., :2] + inverse_sigmoid(reference)
                boxes = torch.cat([xy, delta[..., 2:]], -1).sigmoid()
            hs.append(tgt)
            refs_out.append(boxes)
            # as in Deformable DETR: no gradient flows into the next layer's reference
            reference = boxes.detach()
        return torch.stack(hs), torch.stack(refs_out)


class DeformableTransformer(nn.Module):
    """Deformable encoder + decoder (``two_stage=False``)."""

    def __init__(
        self,
        d_model: int,
        nheads: int,
        dim_feedforward: int,
        num_levels: int,
        *,
        enc_layers: int,
        dec_layers: int,
        enc_n_points: int,
        dec_n_points: int,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.level_embed = nn.Parameter(torch.zeros(num_levels, d_model))
        self.encoder = Encoder(
            [
                EncoderLayer(d_model, dim_feedforward, num_levels, nheads, enc_n_points)
                for _ in range(enc_layers)
            ]
        )
        self.decoder = Decoder(
            [
                DecoderLayer(d_model, dim_feedforward, num_levels, nheads, dec_n_points)
                for _ in range(dec_layers)
            ]
        )
        self.reference_points = nn.Linear(d_model, 2)

    def forward(
        self,
        srcs: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        pos_embeds: Sequence[torch.Tensor],
        query_embed: torch.Tensor,
        bbox_embed: Sequence[nn.Module],
    ) -> TransformerOutput:
        """Encode the levels and decode the queries.

        Args:
            srcs, pos_embeds: per level (N, C, H_l, W_l).
            masks: per level (N, H_l, W_l) bool, True on padding.
            query_embed: (Q, 2C): first C columns = query position, last C = initial target.
            bbox_embed: the detector's per-decoder-layer box MLPs.
        """
        levels = self.flatten(srcs, masks, pos_embeds)
        memory = self.encoder(levels)
        n = memory.shape[0]
        query_pos, tgt = torch.split(query_embed, self.d_model, dim=1)
        query_pos = query_pos.unsqueeze(0).expand(n, -1, -1)
        tgt = tgt.unsqueeze(0).expand(n, -1, -1)
        init_reference = self.reference_points(query_pos).sigmoid()
        hs, inter = self.decoder(tgt, query_pos, init_reference, memory, levels, bbox_embed)
        return TransformerOutput(
            memory=memory, hs=hs, init_reference=init_reference, inter_references=inter
        )

    def flatten(
        self,
        srcs: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        pos_embeds: Sequence[torch.Tensor],
    ) -> FlatLevels:
        """Flatten and concatenate the levels; add ``level_embed`` to the position embeddings."""
        shapes = tuple((int(src.shape[-2]), int(src.shape[-1])) for src in srcs)
        spatial_shapes = shapes_tensor(shapes, srcs[0].device)
        sizes = spatial_shapes.prod(1)
        level_start_index = torch.cat((sizes.new_zeros((1,)), sizes.cumsum(0)[:-1]))
        pos = [
            p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1)
            for lvl, p in enumerate(pos_embeds)
        ]
        return FlatLevels(
            src=torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1),
            pos=torch.cat(pos, 1),
            padding_mask=torch.cat([m.flatten(1) for m in masks], 1),
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=torch.stack([valid_ratio(m) for m in masks], 1),
            shapes=shapes,
        )


@lru_cache(maxsize=16)
def shapes_tensor(shapes: tuple[tuple[int, int], ...], device: torch.device) -> torch.Tensor:
    """``shapes`` as an (L, 2) int64 tensor on ``device``, made once per input size and device and shared (never
    written to): a host-to-device copy from ordinary memory is followed by a stream synchronise, which in the middle
    of the forward waited for the backbone. Made outside inference mode, so that training can save it for backward.
    """
    with torch.inference_mode(False), torch.no_grad():
        return torch.as_tensor(shapes, dtype=torch.long, device=device)


def valid_ratio(mask: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool pad mask -> (N, 2) ``(valid_w / W, valid_h / H)`` (first row / column)."""
    _, h, w = mask.shape
    valid_h = torch.sum(~mask[:, :, 0], 1)
    valid_w = torch.sum(~mask[:, 0, :], 1)
    return torch.stack([valid_w.float() / w, valid_h.float() / h], -1)


def encoder_reference_points(
    shapes: Sequence[tuple[int, int]], valid_ratios: torch.Tensor
) -> torch.Tensor:
    """Pixel centres of each level normalised by its valid extent, scaled by every level's ratio.

    Args:
        shapes: L ``(H_l, W_l)``. valid_ratios: (N, L, 2) ``(w, h)``.

    Returns:
        (N, S, L, 2) ``(x, y)``.
    """
    device = valid_ratios.device
    refs = []
    for lvl, (h, w) in enumerate(shapes):
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
            torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
            indexing="ij",
        )
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
        refs.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]
