"""CUDA-graph replay of a box segmenter's image encoder (``SegmenterConfig.cuda_graph``).

The encoder's input is static: (B, 3, S, S) with S the model's input size and B at most ``encoder_batch``, and its
fast path makes no host syncs. So its several hundred kernel launches a frame (ViT-H: ~700, each a few microseconds of
CPU time that the GPU can outrun) can be captured once into a ``torch.cuda.CUDAGraph`` and replayed with one launch.

``EncoderGraphs`` holds one graph per (device, input shape, dtype), made on first use under a lock, following the
recipe of PyTorch's CUDA-graph notes: a few warm-up calls on a side stream (they also build what the forward keeps,
e.g. SAM's rel-pos tables), then the capture on a static copy of the input. At capture the graph is replayed once on
that input and compared with the eager output of the same input; a difference beyond ``SELF_CHECK_RTOL``, or any
exception while capturing, logs one warning and the segmenter runs eager from then on (its masks stay right; only
the speed-up is lost). ``fallback`` says why.

A replay copies the caller's input into the static input, replays, and clones the static output, all under the lock
and after the previous replay's clone (an event the next replay's stream waits for): two threads, on one CUDA stream
or two, never see each other's frames. The graph reads the weights at the addresses it was captured with: each
replay first compares a stamp of the module's parameters and buffers (storage address, version counter, device,
dtype); a changed one (``load_state_dict``, ``p.copy_()``, ``.to()``) captures again. A write the version counter
does not see (through ``p.data`` or a numpy view of it, or on a model made in inference mode, whose tensors have no
version) is not detected: call ``reset()`` after such a write.

Memory: each graph keeps its private memory pool, about the encoder's eager peak of activation memory at that batch
size (SAM ViT-H at B=1: several hundred MB, mostly the global-attention blocks' rel-pos bias), plus its static input
and output, and references to the tensors the capture read (the weights, SAM's rel-pos tables), until ``reset()`` or
the segmenter goes.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree

logger = logging.getLogger(__name__)

WARM_UP_CALLS = 3
"""Eager calls on a side stream before a capture (PyTorch's recipe uses 3; they pay lazy initialisations, cuBLAS
workspaces and SAM's rel-pos tables, which a capture must not make)."""
SELF_CHECK_RTOL = 1e-2
"""The capture's self-check: the replay's output may differ from the eager output of the same input by at most this
times the eager output's largest magnitude. Expected: 0 (the same kernels on the same data); a library that picks
another kernel under capture could differ by bf16 roundings (below 1e-2); a graph reading stale or wrong memory
differs by the output's own scale."""

Stamp = tuple


def weights_stamp(module: torch.nn.Module) -> Stamp:
    """(storage address, version, device, dtype) of every parameter and buffer of ``module``: what a captured graph
    depends on. A tensor made in inference mode has no version counter: its address alone counts."""
    stamp = []
    for t in (*module.parameters(), *module.buffers()):
        version = None if t.is_inference() else t._version
        stamp.append((t.data_ptr(), version, t.device, t.dtype))
    return tuple(stamp)


@dataclass
class CapturedEncoder:
    """One captured graph and what a replay needs: its static input and output, the stamp of the weights it read,
    the tensors it must keep alive (``keep``), the event of the last replay's clone, and the self-check's largest
    difference (``max_diff``)."""

    graph: Any  # torch.cuda.CUDAGraph (a stand-in in the CPU tests)
    static_input: torch.Tensor
    static_output: Any
    stamp: Stamp
    keep: list = field(default_factory=list)
    max_diff: float = 0.0
    done: Any = None  # torch.cuda.Event recorded after the last replay's clone

    def replay(self, x: torch.Tensor) -> Any:
        """The encoder's output for ``x`` (same shape, dtype, device as the static input), as new tensors, queued on
        the calling thread's current stream. Call with the owner's lock held."""
        with torch.cuda.device(x.device):
            stream = torch.cuda.current_stream(x.device)
            # the previous replay's clone (maybe queued on another stream) must have read the output first
            if self.done is not None:
                stream.wait_event(self.done)
            self.static_input.copy_(x)
            self.graph.replay()
            out = pytree.tree_map_only(torch.Tensor, torch.clone, self.static_output)
            done = torch.cuda.Event()
            done.record(stream)
            self.done = done
        return out


def capture_encoder(
    fn: Callable[[torch.nn.Module, torch.Tensor], Any], module: torch.nn.Module, x: torch.Tensor
) -> CapturedEncoder:
    """Capture ``fn(module, x)`` into a CUDA graph (PyTorch's recipe) and check it against the eager output.

    Raises:
        RuntimeError: the replay's output differs from the eager output beyond ``SELF_CHECK_RTOL`` (or in shape,
            dtype or NaN/inf places); and whatever the capture itself raises.
    """
    device = x.device
    stamp = weights_stamp(module)
    # the capture stream, the graph and its pool on x's device, whichever device is current
    with torch.cuda.device(device):
        # a normal tensor, not an inference one: a replay may copy into it in or outside inference mode
        with torch.inference_mode(False):
            static_input = x.clone()
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARM_UP_CALLS):
                eager = fn(module, static_input)
        torch.cuda.current_stream(device).wait_stream(side)
        # built by the warm-up; the graph reads them: they must outlive it
        keep = _kept_tables(module)
        graph = torch.cuda.CUDAGraph()
        # its own capture stream (torch's default one is shared by all captures: another segmenter's could run at
        # the same time); thread_local: other threads' CUDA work (the app's other sessions) may go on meanwhile
        with torch.cuda.graph(
            graph, stream=torch.cuda.Stream(device), capture_error_mode="thread_local"
        ):
            static_output = fn(module, static_input)
        graph.replay()
        max_diff = output_difference(eager, static_output)
    if weights_stamp(module) != stamp:
        raise RuntimeError("the weights changed while the graph was being captured")
    return CapturedEncoder(graph, static_input, static_output, stamp, keep, max_diff)


def output_difference(eager: Any, graphed: Any) -> float:
    """The largest absolute difference between two outputs of the encoder (a tensor, or SAM 2.1's dict of tensors
    and lists), relative to the eager output's largest magnitude.

    Raises:
        RuntimeError: different structure, shapes or dtypes, NaN/inf in different places, or a relative difference
            over ``SELF_CHECK_RTOL``.
    """
    a, spec_a = pytree.tree_flatten(eager)
    b, spec_b = pytree.tree_flatten(graphed)
    if spec_a != spec_b:
        raise RuntimeError("the graph's output has another structure than the eager output")
    worst = 0.0
    for left, right in zip(a, b, strict=True):
        if not isinstance(left, torch.Tensor):
            continue
        if left.shape != right.shape or left.dtype != right.dtype:
            raise RuntimeError(
                f"the graph's output is {tuple(right.shape)} {right.dtype}, the eager output {tuple(left.shape)} "
                f"{left.dtype}"
            )
        u, v = left.float(), right.float()
        finite = torch.isfinite(u)
        if not torch.equal(finite, torch.isfinite(v)) or not torch.equal(u[~finite], v[~finite]):
            raise RuntimeError(
                "the graph's output has NaN/inf where the eager output has not (or the other way)"
            )
        scale = float(u[finite].abs().max()) if finite.any() else 0.0
        diff = float((u[finite] - v[finite]).abs().max()) if finite.any() else 0.0
        relative = diff / scale if scale > 0 else diff
        if relative > SELF_CHECK_RTOL:
            raise RuntimeError(
                f"the graph's output differs from the eager output by {diff:.3g} (the output's scale {scale:.3g})"
            )
        worst = max(worst, relative)
    return worst


def _kept_tables(module: torch.nn.Module) -> list[torch.Tensor]:
    """The rel-pos tables ``uvosam.sam_fast`` keeps for the ``rel_pos`` parameters of ``module`` (none for SAM 2.1):
    a graph that read them holds them, so that ``clear_rel_pos_tables`` cannot free them under it."""
    from uvosam import sam_fast

    tables = []
    for p in module.parameters():
        kept = sam_fast._TABLES.get(p)
        if kept:
            tables += [table for _, table in kept.values()]
    return tables


class EncoderGraphs:
    """Captured graphs of one segmenter's encoder function, one per (device, input shape, dtype); see the module
    docstring. ``capture``: how a graph is made (``capture_encoder``; the tests inject a stand-in).

    Args:
        fn: ``fn(module, x)``, the segmenter's encoder function (``_encode_fn``).
        name: the model, for the warning.
    """

    def __init__(
        self,
        fn: Callable[[torch.nn.Module, torch.Tensor], Any],
        name: str,
        capture: Callable[..., CapturedEncoder] = capture_encoder,
    ) -> None:
        self._fn = fn
        self._name = name
        self._capture = capture
        self._lock = threading.Lock()
        self._graphs: dict[tuple, CapturedEncoder] = {}
        self.fallback: str | None = None
        """Why this segmenter runs its encoder eager (a capture failed or its self-check did), else ``None``."""
        self.captures = 0
        """How many graphs were captured (a re-capture after a change of the weights counts again)."""

    def __call__(self, module: torch.nn.Module, x: torch.Tensor) -> Any:
        """``fn(module, x)``: by replaying the graph of ``x``'s (device, shape, dtype), captured now if there is
        none or the weights changed since; eager after a failed capture."""
        if self.fallback is not None:
            return self._fn(module, x)
        with self._lock:
            if self.fallback is not None:  # another thread's capture failed while this one waited
                return self._fn(module, x)
            key = (x.device, tuple(x.shape), x.dtype)
            captured = self._graphs.get(key)
            if captured is not None and captured.stamp != weights_stamp(module):
                logger.info(
                    "%s: the encoder's weights changed since its CUDA graph was captured: capturing again",
                    self._name,
                )
                del self._graphs[key]
                captured = None
            if captured is None:
                try:
                    captured = self._capture(self._fn, module, x)
                except Exception as err:  # noqa: BLE001 - any failure: eager from now on, and the run goes on
                    self._fall_back(err)
                    return self._fn(module, x)
                self._graphs[key] = captured
                self.captures += 1
                logger.info(
                    "%s: image encoder captured as a CUDA graph for input %s %s (self-check: relative "
                    "difference %.2g)",
                    self._name,
                    tuple(x.shape),
                    str(x.dtype).removeprefix("torch."),
                    captured.max_diff,
                )
            return captured.replay(x)

    def _fall_back(self, err: Exception) -> None:
        self.fallback = f"{type(err).__name__}: {err}"[:300]
        self._graphs.clear()
        warnings.warn(
            f"{self._name}: CUDA-graph capture of the image encoder failed ({self.fallback}); running it eager "
            "from now on (the same masks, without the graph's speed-up). SegmenterConfig(cuda_graph=False) / "
            "drop --cuda-graph to silence this.",
            RuntimeWarning,
            stacklevel=4,
        )

    def reset(self) -> None:
        """Drop every graph (their memory pools go when no replay holds them); the next call captures again. After
        a write to the weights that their version counters do not see."""
        with self._lock:
            self._graphs.clear()

    @property
    def graph_count(self) -> int:
        return len(self._graphs)
