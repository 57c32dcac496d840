"""CUDA-graph replay of a box segmenter's image encoder (``SegmenterConfig.cuda_graph``).

The encoder's input is static: (B, 3, S, S) with S the model's input size and B at most ``encoder_batch``, and its
fast path makes no host syncs. So its several hundred kernel launches a frame (ViT-H: ~700, each a few microseconds of
CPU time that the GPU can outrun) can be captured once into a ``torch.cuda.CUDAGraph`` and replayed with one launch.

``EncoderGraphs`` holds one graph per (device, input shape, dtype), made on first use under a lock, following the
recipe of PyTorch's CUDA-graph notes: a few warm-up calls on a side stream (they also build what the forward keeps,
e.g. SAM's rel-pos tables), then the capture on a static copy of the input. At capture the graph is replayed on that
input and on a second one (the input mirrored, plus one: unlike the first whatever that is), each compared with the
eager output of the same input; a difference beyond ``SELF_CHECK_RTOL``, or any exception while capturing, logs one
warning and the segmenter runs eager from then on (its masks stay right; only the speed-up is lost). ``fallback``
says why. A failed capture leaves the thread on the stream it was on, and ends the allocator's routing into the
capture's pool (torch 2.11's ``capture_end`` skips that when it raises, pytorch#180395, after which
``torch.cuda.empty_cache`` would free nothing of the default pools for the rest of the process); the partial pool
itself stays reserved on a torch without pytorch#190348.

Captures are serial: one module-wide lock (``CAPTURE_LOCK``) is held around each, by every segmenter (PyTorch allows
one capture at a time in a process). A device-wide ``torch.cuda.synchronize()`` or a ``cudaFree`` on another thread
while a capture is underway invalidates it, and ``torch.cuda.empty_cache`` makes one: during a capture it leaves the
default pools alone but still frees the unused memory of dropped graphs' pools (a fallback, ``reset``, an evicted
model's). uvosam makes no device-wide synchronize (``UVOSAM.warm_up`` synchronises its own stream only); code that
calls ``empty_cache`` while another thread may capture should hold ``CAPTURE_LOCK`` around it (the app's
``free_gpu_memory`` does). Code that does either unguarded can make a capture fail: that segmenter then runs eager,
with the warning, and CUDA stays usable.

A replay copies the caller's input into the static input, replays, and clones the static output, all under the lock and
after the previous replay's clone (an event the next replay's stream waits for): two threads, on one CUDA stream or two,
never see each other's frames. A graph is dropped (new weights, a fallback, ``reset``) only after its last replay is
done. The graph reads the weights at the addresses it was captured with: each replay first compares a stamp of the
parameters and buffers of the modules the encoder function reads (storage address, version counter, device, dtype;
``weights``: SAM's image encoder, SAM 2.1's image encoder and the two decoder convolutions ``forward_image`` applies); a
changed one (``load_state_dict``, ``p.copy_()``, ``.to()``) captures again. A write the version counter does not see
(through ``p.data`` or a numpy view of it, or on a model made in inference mode, whose tensors have no version) is not
detected: call ``reset()`` after such a write.

Memory: each graph keeps its private memory pool, about the encoder's eager peak of activation memory at that batch
size (SAM ViT-H at B=1: several hundred MB, mostly the global-attention blocks' rel-pos bias) and its cuBLAS
workspace (torch's cached workspaces are dropped around each capture: ``_clear_cublas_workspaces``), plus its static
input and output, and references to the tensors the capture read (the weights, SAM's rel-pos tables), until
``reset()`` or the segmenter goes.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree

from uvosam.sam_fast import kept_tables, tensor_stamp

logger = logging.getLogger(__name__)

WARM_UP_CALLS = 3
"""Eager calls on a side stream before a capture (PyTorch's recipe uses 3; they pay lazy initialisations, cuBLAS
handles and SAM's rel-pos tables, which a capture must not make; the capture's own cuBLAS workspace is made in its
pool, ``_clear_cublas_workspaces``)."""
SELF_CHECK_RTOL = 1e-3
"""The capture's self-check: the replay's output may differ from the eager output of the same input by at most this
times the eager output's largest magnitude. Expected: 0 (the same kernels on the same data; the GPU tests ask for
equal masks); a graph reading stale or wrong memory differs by the output's own scale."""

Stamp = tuple

CAPTURE_LOCK = threading.Lock()
"""Held around every capture, by every ``EncoderGraphs``: PyTorch allows one capture at a time in a process. Hold it
too around ``torch.cuda.empty_cache`` where another thread may be capturing: it can free memory (``cudaFree``) during
a capture, which makes the capture fail."""


def weights_stamp(modules: torch.nn.Module | Sequence[torch.nn.Module]) -> Stamp:
    """(storage address, version, device, dtype) of every parameter and buffer of ``modules`` (one module or
    several): what a captured graph depends on. A tensor made in inference mode has no version counter: its address
    alone counts."""
    stamp = []
    for root in [modules] if isinstance(modules, torch.nn.Module) else modules:
        # each module's own tensors, read directly: parameters()/buffers() walk the tree through generators: 0.61 ->
        # 0.43 ms a ViT-H stamp on every replay
        for module in root.modules():
            tensors = (*module._parameters.values(), *module._buffers.values())
            stamp.extend(tensor_stamp(t) for t in tensors if t is not None)
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
            try:
                self.static_input.copy_(x)
                self.graph.replay()
                out = pytree.tree_map_only(torch.Tensor, torch.clone, self.static_output)
            finally:
                # even when the clone raises (out of memory): the replay is queued by then, and the next one, maybe on
                # another stream, must not overwrite the static input or replay before it is done
                done = torch.cuda.Event()
                done.record(stream)
                self.done = done
        return out

    def wait(self) -> None:
        """Block until the last replay's clone is done (its stream may be another thread's): before the graph, its
        static input and output and its pool are dropped, which a queued replay still uses."""
        if self.done is not None:
            self.done.synchronize()


def capture_encoder(
    fn: Callable[[torch.nn.Module, torch.Tensor], Any],
    module: torch.nn.Module,
    x: torch.Tensor,
    weights: Sequence[torch.nn.Module],
) -> CapturedEncoder:
    """Capture ``fn(module, x)`` into a CUDA graph (PyTorch's recipe) and check it against the eager output, on
    ``x`` and on a second input (``x`` mirrored, plus one: a graph that ignored its input or kept the first one's
    data would fail it). Call with ``CAPTURE_LOCK`` held.

    Args:
        weights: the modules whose parameters and buffers ``fn`` reads (``weights_stamp``).

    Raises:
        RuntimeError: the replay's output differs from the eager output beyond ``SELF_CHECK_RTOL`` (or in shape,
            dtype or NaN/inf places); and whatever the capture itself raises.
    """
    device = x.device
    stamp = weights_stamp(weights)
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
        keep = kept_tables(module)
        graph = torch.cuda.CUDAGraph()
        # a pool named here: after a failed capture, the allocator's routing into it is ended by its id
        pool = torch.cuda.graph_pool_handle()
        # the capture's cuBLAS workspace made inside the graph's pool, and let go of after it (why: the function)
        _clear_cublas_workspaces()
        # the thread's current stream, restored by this block even when the capture fails: torch.cuda.graph's exit
        # runs capture_end first, which then raises, and never restores the stream it replaced
        with torch.cuda.stream(torch.cuda.current_stream(device)):
            try:
                # its own capture stream (torch's default one is shared by all captures); thread_local: other
                # threads' CUDA work (the app's other sessions) may go on meanwhile
                with torch.cuda.graph(
                    graph,
                    pool=pool,
                    stream=torch.cuda.Stream(device),
                    capture_error_mode="thread_local",
                ):
                    static_output = fn(module, static_input)
            except BaseException:
                _end_allocate_to_pool(device, pool)
                raise
            finally:
                _clear_cublas_workspaces()
        graph.replay()
        max_diff = output_difference(eager, static_output)
        # unlike x whatever x is: the mirror alone equals a left-right symmetric input (the app's warm-up frame is
        # uniform grey), and a graph replaying the first input's data then passed. With + 1, of two mirrored elements
        # at least one differs from x (x[i] = x[j] + 1 and x[j] = x[i] + 1 cannot both hold), and every element of a
        # symmetric input does
        probe = static_input.flip(-1) + 1.0
        eager = fn(module, probe)
        static_input.copy_(probe)
        graph.replay()
        max_diff = max(max_diff, output_difference(eager, static_output))
        del eager, probe
    if weights_stamp(weights) != stamp:
        raise RuntimeError("the weights changed while the graph was being captured")
    return CapturedEncoder(graph, static_input, static_output, stamp, keep, max_diff)


def _clear_cublas_workspaces() -> None:
    """Drop torch's cached cuBLAS workspaces, just before a capture and just after it (as inductor's
    ``cudagraph_trees`` does, ``clear_cublas_manager``). torch keeps one workspace per (cuBLAS handle, stream), made
    at its first matmul and kept for the process, and a capture stream is one of torch's 32 pool streams, handed out
    round robin: so a later ``torch.cuda.Stream()`` (the next capture's warm-up side stream, after 16 captures) can
    be an earlier capture's stream. Without the clear before, a capture could bake in a workspace made by eager work,
    which eager matmuls on that stream would then write while the graph replays; without the clear after, the
    workspace made during the capture (inside the graph's pool) would stay torch's for the process, one more segment
    per capture, and be handed to eager matmuls on that stream later: the same memory in use in two places. Cleared,
    the capture makes its own inside its pool, which the graph alone uses and which goes with the graph. Other
    threads' next matmul makes a new workspace (once). A private API, looked up: where it is missing, nothing done."""
    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()


def _end_allocate_to_pool(device: torch.device, pool: Any) -> None:
    """End the caching allocator's routing of ``device``'s allocations into ``pool`` after a failed capture: torch
    2.11's ``capture_end`` raises before it does so (pytorch#180395), and the allocator then counts the capture as
    underway for good (``empty_cache`` frees nothing of the default pools from then on). A private API, looked up:
    where it is missing, or where torch already ended it ("not recording"), nothing to do."""
    end = getattr(torch._C, "_cuda_endAllocateToPool", None)
    if end is None:
        return
    try:
        end(device.index, pool)
    except Exception as err:  # noqa: BLE001 - a torch with the fix: nothing was left to end
        logger.debug("endAllocateToPool after a failed capture: %s", err)


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
        finite, nan = torch.isfinite(u), torch.isnan(u)
        # NaN != NaN: NaN places compared as masks, the infinities by value
        inf = ~finite & ~nan
        if (
            not torch.equal(finite, torch.isfinite(v))
            or not torch.equal(nan, torch.isnan(v))
            or not torch.equal(u[inf], v[inf])
        ):
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


class EncoderGraphs:
    """Captured graphs of one segmenter's encoder function, one per (device, input shape, dtype); see the module
    docstring. ``capture``: how a graph is made (``capture_encoder``; the tests inject a stand-in).

    Args:
        fn: ``fn(module, x)``, the segmenter's encoder function (``_encode_fn``).
        name: the model, for the warning.
        weights: the modules whose parameters and buffers ``fn`` reads, which the weights stamp covers; ``None``:
            the module a call passes.
    """

    def __init__(
        self,
        fn: Callable[[torch.nn.Module, torch.Tensor], Any],
        name: str,
        capture: Callable[..., CapturedEncoder] = capture_encoder,
        weights: Sequence[torch.nn.Module] | None = None,
    ) -> None:
        self._fn = fn
        self._name = name
        self._capture = capture
        self._weights = None if weights is None else list(weights)
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
            weights = [module] if self._weights is None else self._weights
            if captured is not None and captured.stamp != weights_stamp(weights):
                logger.info(
                    "%s: the encoder's weights changed since its CUDA graph was captured: capturing again",
                    self._name,
                )
                captured.wait()
                del self._graphs[key]
                captured = None
            if captured is None:
                try:
                    with CAPTURE_LOCK:
                        captured = self._capture(self._fn, module, x, weights)
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
        self._drop_all()
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
            self._drop_all()

    def _drop_all(self) -> None:
        """Drop every graph once its last replay is done. Call with the lock held."""
        for captured in self._graphs.values():
            captured.wait()
        self._graphs.clear()

    @property
    def graph_count(self) -> int:
        return len(self._graphs)
