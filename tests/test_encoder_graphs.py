"""SegmenterConfig.cuda_graph on a CPU: the option's checks, the eager run where CUDA is missing, and the bookkeeping of
uvosam.encoder_graphs (one graph per input shape, a new capture after the weights change, one warning and eager after
a failed capture, one replay at a time) with a stand-in for the CUDA capture. The CUDA graphs themselves: test_gpu.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import types
import warnings

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_leaves, tree_map_only

from uvosam import provenance
from uvosam.config import SegmenterConfig
from uvosam.encoder_graphs import (
    CapturedEncoder,
    EncoderGraphs,
    capture_encoder,
    output_difference,
    weights_stamp,
)
from uvosam.errors import InputError
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes, tiny_sam


def test_cuda_graph_is_off_by_default_checked_and_not_with_compile():
    assert SegmenterConfig().cuda_graph is False
    assert SegmenterConfig(cuda_graph=np.bool_(True)).cuda_graph is True
    with pytest.raises(
        InputError, match=r"SegmenterConfig.cuda_graph must be True or False; got 'yes'"
    ):
        SegmenterConfig(cuda_graph="yes")
    with pytest.raises(
        InputError, match=r"compile and SegmenterConfig.cuda_graph cannot both be on"
    ):
        SegmenterConfig(compile=True, cuda_graph=True)


def test_without_cuda_the_segmenter_warns_once_and_runs_eager():
    clip = moving_shapes(num_frames=2, height=48, width=64, num_objects=2, seed=3)
    sam = tiny_sam()
    with pytest.warns(UserWarning, match=r"cuda_graph needs a CUDA device; this SAM runs on cpu"):
        graphed = BoxPromptSegmenter(sam, SegmenterConfig(cuda_graph=True, fast=True))
    eager = BoxPromptSegmenter(sam, SegmenterConfig(fast=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no further warning per frame
        for frame, all_boxes in zip(clip.frames, clip.boxes_xyxy, strict=True):
            boxes = all_boxes[~np.isnan(all_boxes).any(axis=1)]
            np.testing.assert_array_equal(
                graphed.segment(frame, boxes).masks, eager.segment(frame, boxes).masks
            )
    described = graphed.describe()
    assert (described["cuda_graph"], described["cuda_graph_fallback"]) == (
        True,
        "not a CUDA device (cpu)",
    )
    assert (eager.describe()["cuda_graph"], eager.describe()["cuda_graph_fallback"]) == (
        False,
        None,
    )


def test_run_json_text_says_whether_the_graph_ran():
    base = {"family": "SAM", "model_type": "vit_h", "weights": "sam_vit_h", "class": "BoxPromptSegmenter",
            "fast": True, "encoder_dtype": "bfloat16 (matmul weights; the rest float32)"}  # fmt: skip
    text = provenance._mask_model_text({**base, "cuda_graph": True, "cuda_graph_fallback": None})
    assert "encoder weights bfloat16 (matmul weights; the rest float32), CUDA graph)" in text
    fell_back = provenance._mask_model_text(
        {**base, "cuda_graph": True, "cuda_graph_fallback": "not a CUDA device"}
    )
    assert "CUDA graph requested, ran eager (not a CUDA device)" in fell_back
    assert "CUDA graph" not in provenance._mask_model_text({**base, "cuda_graph": False})


class StandInCapture:
    """What ``capture_encoder`` hands back, made on the CPU: a "replay" runs the function eagerly on a static copy
    of the input (what a graph computes); it counts captures and replays, notes two replays at once, notes two
    captures at once (``capturing``: shared by the stand-ins of one test) and which graphs were waited for before
    being dropped (``waited``)."""

    def __init__(
        self,
        fail: Exception | None = None,
        replay_s: float = 0.0,
        capture_s: float = 0.0,
        capturing: list | None = None,
    ) -> None:
        self.fail = fail
        self.replay_s = replay_s
        self.capture_s = capture_s
        self.capturing = capturing if capturing is not None else [0, 0]  # [now, most at once]
        self.captured: list[tuple] = []
        self.replays = 0
        self.inside = 0
        self.overlapped = False
        self.waited: list[tuple] = []

    def __call__(self, fn, module, x, weights):
        self.capturing[0] += 1
        self.capturing[1] = max(self.capturing)
        time.sleep(self.capture_s)
        self.capturing[0] -= 1
        if self.fail is not None:
            raise self.fail
        self.captured.append(tuple(x.shape))
        outer = self

        class Captured:
            stamp = weights_stamp(weights)
            max_diff = 0.0
            static_input = x.clone()

            def wait(self):
                outer.waited.append(tuple(self.static_input.shape))

            def replay(self, x):
                outer.inside += 1
                outer.overlapped |= outer.inside > 1
                self.static_input.copy_(x)
                time.sleep(outer.replay_s)
                out = tree_map_only(torch.Tensor, torch.clone, fn(module, self.static_input))
                outer.replays += 1
                outer.inside -= 1
                return out

        return Captured()


def linear_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).eval()


def run(module, x):
    return module(x)


def test_one_capture_per_input_shape_and_again_after_the_weights_change():
    capture = StandInCapture()
    graphs = EncoderGraphs(run, "test", capture=capture)
    model = linear_model()
    one, two = torch.randn(1, 4), torch.randn(2, 4)
    with torch.inference_mode():
        for x in (one, torch.randn(1, 4), two, one, two):
            torch.testing.assert_close(graphs(model, x), model(x), rtol=0, atol=0)
        assert (
            capture.captured == [(1, 4), (2, 4)]
            and graphs.captures == 2
            and graphs.graph_count == 2
        )
    with torch.no_grad():
        model[0].weight.add_(1.0)  # in place: the graph of (1, 4) would read the old values
    with torch.inference_mode():
        torch.testing.assert_close(graphs(model, one), model(one), rtol=0, atol=0)
    assert capture.captured == [(1, 4), (2, 4), (1, 4)] and graphs.fallback is None
    graphs.reset()
    assert graphs.graph_count == 0


def test_a_failed_capture_warns_once_and_the_encoder_runs_eager_from_then_on():
    capture = StandInCapture(fail=RuntimeError("operation not permitted when stream is capturing"))
    graphs = EncoderGraphs(run, "SAM vit_h", capture=capture)
    model = linear_model()
    x = torch.randn(1, 4)
    with pytest.warns(RuntimeWarning, match=r"SAM vit_h: CUDA-graph capture of the image encoder failed "
                                            r"\(RuntimeError: operation not permitted"):  # fmt: skip
        out = graphs(model, x)
    torch.testing.assert_close(out, model(x), rtol=0, atol=0)
    capture.fail = None  # a second capture would now work, but the segmenter stays eager
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert graphs(model, torch.randn(2, 4)).shape == (2, 3)
    assert capture.captured == [] and graphs.fallback.startswith(
        "RuntimeError: operation not permitted"
    )


def test_two_threads_never_replay_at_once_and_each_gets_its_own_output():
    capture = StandInCapture(replay_s=0.002)
    graphs = EncoderGraphs(run, "test", capture=capture)
    model = linear_model()
    inputs = [torch.randn(1, 4) for _ in range(20)]
    results: dict[int, list] = {0: [], 1: []}

    def worker(k):
        with torch.inference_mode():
            for x in inputs[k::2]:
                results[k].append((x, graphs(model, x)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not capture.overlapped and capture.replays == 20 and len(capture.captured) == 1
    for pairs in results.values():
        for x, out in pairs:
            torch.testing.assert_close(out, model(x), rtol=0, atol=0)


def test_the_weights_stamp_sees_in_place_writes_loads_and_casts_but_not_a_forward():
    model = linear_model()
    stamp = weights_stamp(model)
    with torch.inference_mode():
        model(torch.randn(2, 4))
    assert weights_stamp(model) == stamp
    with torch.no_grad():
        model[1].weight.copy_(torch.full((3,), 2.0))
    assert weights_stamp(model) != stamp
    stamp = weights_stamp(model)
    model.load_state_dict(linear_model().state_dict())
    assert weights_stamp(model) != stamp
    stamp = weights_stamp(model)
    model[0].to(torch.bfloat16)
    assert weights_stamp(model) != stamp


def test_the_capture_self_check_compares_outputs():
    a = {"vision_features": torch.ones(2, 3), "backbone_fpn": [torch.arange(4.0), torch.zeros(1)]}
    same = {
        "vision_features": torch.ones(2, 3),
        "backbone_fpn": [torch.arange(4.0), torch.zeros(1)],
    }
    assert output_difference(a, same) == 0.0
    close = {**same, "backbone_fpn": [torch.arange(4.0) + 1e-3, torch.zeros(1)]}
    assert 0 < output_difference(a, close) < 1e-3  # 1e-3 of the output's scale (3)
    with pytest.raises(RuntimeError, match="differs from the eager output"):
        output_difference(a, {**same, "backbone_fpn": [torch.arange(4.0) + 0.1, torch.zeros(1)]})
    with pytest.raises(
        RuntimeError, match="differs from the eager output"
    ):  # 1.7e-3 of the scale: over 1e-3
        output_difference(a, {**same, "backbone_fpn": [torch.arange(4.0) + 5e-3, torch.zeros(1)]})
    with pytest.raises(RuntimeError, match="NaN/inf"):
        output_difference(torch.ones(3), torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(RuntimeError, match="NaN/inf"):
        output_difference(torch.tensor([1.0, float("inf")]), torch.tensor([1.0, float("-inf")]))
    # NaN (and inf) in the same places is no difference: NaN != NaN must not fail every output that has one
    odd = torch.tensor([1.0, float("nan"), float("inf"), -2.0])
    assert output_difference(odd, odd.clone()) == 0.0
    with pytest.raises(RuntimeError, match="differs from the eager output"):
        output_difference(odd, torch.tensor([1.0, float("nan"), float("inf"), -1.0]))
    with pytest.raises(RuntimeError, match="another structure"):
        output_difference(a, {"vision_features": torch.ones(2, 3)})
    with pytest.raises(RuntimeError, match="the graph's output is"):
        output_difference(torch.ones(3), torch.ones(3, dtype=torch.bfloat16))


def test_captures_are_serial_across_segmenters():
    """PyTorch allows one capture at a time in a process: two segmenters' first calls from two threads capture one
    after the other (each EncoderGraphs has its own lock; the capture lock is the module's)."""
    capturing = [0, 0]
    captures = [StandInCapture(capture_s=0.05, capturing=capturing) for _ in range(2)]
    graphs = [EncoderGraphs(run, f"test {k}", capture=captures[k]) for k in range(2)]
    model, x = linear_model(), torch.randn(1, 4)
    start = threading.Barrier(2)

    def worker(k):
        start.wait()
        with torch.inference_mode():
            return graphs[k](model, x)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [c.captured for c in captures] == [[(1, 4)], [(1, 4)]]
    assert capturing == [0, 1]  # never two at once


def test_a_graph_is_dropped_only_after_its_last_replay():
    """Before a graph goes (new weights, a fallback, reset), its last replay (maybe queued on another thread's
    stream) is waited for: its static input and pool would be reused under it."""
    capture = StandInCapture()
    graphs = EncoderGraphs(run, "test", capture=capture)
    model = linear_model()
    with torch.inference_mode():
        graphs(model, torch.randn(1, 4))
        graphs(model, torch.randn(2, 4))
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with torch.inference_mode():
        graphs(
            model, torch.randn(1, 4)
        )  # the (1, 4) graph is stale: waited for, then captured again
    assert capture.waited == [(1, 4)]
    graphs.reset()
    assert sorted(capture.waited) == [(1, 4), (1, 4), (2, 4)] and graphs.graph_count == 0
    with torch.inference_mode():
        graphs(model, torch.randn(1, 4))
    capture.fail = RuntimeError("capture failed")
    with pytest.warns(RuntimeWarning, match="capture of the image encoder failed"):
        graphs(model, torch.randn(3, 4))  # a new shape fails: the graph of (1, 4) goes too
    assert capture.waited[3:] == [(1, 4)] and graphs.graph_count == 0


def _on_fake_cuda(segmenter, capture: StandInCapture):
    """``segmenter`` as if on CUDA with ``cuda_graph`` on (``_init_compile`` again), its graphs made by ``capture``."""
    segmenter.config = dataclasses.replace(segmenter.config, cuda_graph=True)
    segmenter.device = torch.device("cuda")
    segmenter._init_compile()
    if segmenter._graphs is not None:
        segmenter._graphs._capture = capture
    return segmenter


def test_sam_with_the_fast_path_off_builds_no_graph_and_says_why():
    """SAM's own encoder forward (segment_anything's get_rel_pos) copies indices from the CPU every call: a capture
    of it always fails, so none is tried; one warning at construction, and describe() says why."""
    slow = BoxPromptSegmenter(tiny_sam(), SegmenterConfig(fast=False))
    with pytest.warns(
        UserWarning, match=r"cuda_graph: SAM's own encoder forward \(the fast path off\)"
    ):
        _on_fake_cuda(slow, StandInCapture())
    assert slow._graphs is None
    assert slow.describe()["cuda_graph_fallback"].startswith("SAM's own encoder forward")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = _on_fake_cuda(
            BoxPromptSegmenter(tiny_sam(), SegmenterConfig(fast=True)), StandInCapture()
        )
    assert fast._graphs is not None and fast.describe()["cuda_graph_fallback"] is None


def test_the_weights_stamp_covers_what_the_encoder_reads_and_not_the_decoder():
    """SAM 2.1's encoder function gets the whole model but reads only the image encoder and the decoder's conv_s0 /
    conv_s1: a change to the rest of the decoder captures nothing again; one to conv_s0 does. SAM: its image encoder."""
    from uvosam.sam2_segmenter import Sam2BoxSegmenter, plain_forward
    from uvosam.testing import tiny_sam2

    capture = StandInCapture()
    seg = _on_fake_cuda(
        Sam2BoxSegmenter(tiny_sam2(), SegmenterConfig(model_type="sam2.1_tiny", fast=False)),
        capture,
    )
    model = seg.model
    assert seg._graphs._weights == [
        model.image_encoder,
        model.sam_mask_decoder.conv_s0,
        model.sam_mask_decoder.conv_s1,
    ]
    x = torch.randn(1, 3, seg.image_size, seg.image_size)
    with torch.inference_mode():
        seg._graphs(model, x)
    with torch.no_grad():
        model.sam_mask_decoder.iou_token.weight.add_(1.0)  # read by the decoder only
    with torch.inference_mode():
        seg._graphs(model, x)
    assert len(capture.captured) == 1
    with torch.no_grad():
        model.sam_mask_decoder.conv_s0.weight.mul_(2.0)
    with torch.inference_mode():
        got = seg._graphs(model, x)
        want = plain_forward(model, x)
    assert len(capture.captured) == 2
    assert list(want) == [
        "backbone_fpn"
    ]  # no vision_pos_enc for a replay to clone (nobody reads it)
    torch.testing.assert_close(got["backbone_fpn"][0], want["backbone_fpn"][0], rtol=0, atol=0)
    sam = _on_fake_cuda(
        BoxPromptSegmenter(tiny_sam(), SegmenterConfig(fast=True)), StandInCapture()
    )
    assert sam._graphs._weights == [sam.model.image_encoder]


class FakeCuda:
    """``torch.cuda`` as ``capture_encoder`` and ``CapturedEncoder.replay`` use it, on the CPU (monkeypatched): streams
    and events that log who waits for what (``log``), a capture that runs the function eagerly (its output is the
    static output), and graphs whose replay runs the captured call again on the static input, or, with ``stale``,
    does nothing: the static output keeps the first input's result (a graph that baked its input)."""

    def __init__(self, monkeypatch, stale: bool = False) -> None:
        self.log: list[str] = []
        self.stale = stale
        self.capturing = None
        self.current = self.stream_named("main")
        self.events = 0
        streams = iter(range(1, 1000))
        for name, value in {
            "device": lambda device: contextlib.nullcontext(),
            "Stream": lambda device=None: self.stream_named(f"pool stream {next(streams)}"),
            "current_stream": lambda device=None: self.current,
            "stream": self._stream,
            "CUDAGraph": self._new_graph,
            "graph_pool_handle": lambda: (0, 1),
            "graph": self._graph,
            "Event": self._new_event,
        }.items():
            monkeypatch.setattr(torch.cuda, name, value)

    def stream_named(self, name: str):
        log = self.log

        class Stream:
            def wait_stream(self, other) -> None:
                pass

            def wait_event(self, event) -> None:
                log.append(f"{name} waits for {event.tag}")

        stream = Stream()
        stream.name = name
        return stream

    def traced(self, fn):
        """``fn``, noting its call inside a capture in the graph being captured (what its replays run again)."""

        def call(module, x):
            out = fn(module, x)
            if self.capturing is not None:
                self.capturing.call = (fn, module, x, out)
            return out

        return call

    def _new_graph(self):
        fake = self

        class Graph:
            call = None

            def replay(self):
                fake.log.append(f"replay on {fake.current.name}")
                if not fake.stale:
                    fn, module, x, out = self.call
                    for kept, new in zip(
                        tensor_leaves(out), tensor_leaves(fn(module, x)), strict=True
                    ):
                        kept.copy_(new)

        return Graph()

    def _new_event(self):
        self.events += 1
        log, tag = self.log, f"event {self.events}"

        class Event:
            def record(self, stream) -> None:
                log.append(f"{tag} recorded on {stream.name}")

            def synchronize(self) -> None:
                pass

        event = Event()
        event.tag = tag
        return event

    @contextlib.contextmanager
    def _stream(self, stream):
        before, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = before

    @contextlib.contextmanager
    def _graph(self, graph, pool=None, stream=None, capture_error_mode="global"):
        self.log.append("capture begins")
        self.capturing = graph
        try:
            with self._stream(stream):
                yield
        finally:
            self.capturing = None
            self.log.append("capture ends")


def tensor_leaves(tree) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


def warm_up_encoder_call(segmenter):
    """(module, x): what ``segmenter``'s encoder function gets for ``UVOSAM.warm_up``'s frame (the app's first
    capture), with a stand-in for the tracker."""
    from uvosam.pipeline import UVOSAM

    class Tracker:
        def new_video(self, height, width):
            return types.SimpleNamespace(push=lambda frame: None, finish=lambda: None)

    calls = []
    run = segmenter._run_encoder
    segmenter._run_encoder = lambda module, x: calls.append((module, x.clone())) or run(module, x)
    UVOSAM(Tracker(), segmenter).warm_up()
    del segmenter._run_encoder
    return calls[0]


@pytest.mark.parametrize("family", ["sam", "sam2.1"])
def test_the_self_check_catches_a_graph_that_replays_the_warm_up_frames_data(monkeypatch, family):
    """The self-check's second input must differ from the first whatever it is: the app's first capture is of the
    warm-up frame, uniform grey, which a mirror leaves as it was. A graph that keeps the first input's data fails the
    check there; a graph that reads its input passes it with no difference."""
    from uvosam.sam2_segmenter import Sam2BoxSegmenter
    from uvosam.testing import tiny_sam2

    if family == "sam":
        segmenter = BoxPromptSegmenter(tiny_sam(depth=2), SegmenterConfig(fast=True))
    else:
        segmenter = Sam2BoxSegmenter(
            tiny_sam2(), SegmenterConfig(model_type="sam2.1_tiny", fast=True)
        )
    module, x = warm_up_encoder_call(segmenter)
    cuda = FakeCuda(monkeypatch)
    fn = cuda.traced(segmenter._encode_fn)
    with torch.inference_mode():
        assert capture_encoder(fn, module, x, [module]).max_diff == 0.0
        cuda.stale = True
        with pytest.raises(RuntimeError, match="differs from the eager output"):
            capture_encoder(fn, module, x, [module])


def test_a_replay_whose_clone_fails_is_still_waited_for_by_the_next(monkeypatch):
    """A replay is queued before its output is cloned: when the clone raises (out of memory), the next replay, on
    another thread's stream, must wait for that replay, not for the one before it (it would overwrite the static
    input and replay the same graph while the failed one may still run)."""
    cuda = FakeCuda(monkeypatch, stale=True)
    captured = CapturedEncoder(torch.cuda.CUDAGraph(), torch.zeros(1, 3), torch.zeros(1, 3), ())
    captured.replay(torch.ones(1, 3))
    with monkeypatch.context() as patch:

        def out_of_memory(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory (the clone)")

        patch.setattr(torch, "clone", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            captured.replay(torch.ones(1, 3))
    cuda.current = cuda.stream_named("another thread's stream")
    captured.replay(torch.ones(1, 3))
    assert cuda.log == [
        "replay on main",
        "event 1 recorded on main",
        "main waits for event 1",
        "replay on main",
        "event 2 recorded on main",
        "another thread's stream waits for event 2",
        "replay on another thread's stream",
        "event 3 recorded on another thread's stream",
    ]


def test_cublas_workspaces_are_cleared_just_before_and_after_a_capture_even_a_failed_one(
    monkeypatch,
):
    """torch's cached cuBLAS workspaces are dropped around the capture (uvosam.encoder_graphs._clear_cublas_workspaces
    says why): the capture then makes its own inside the graph's pool. With a fake torch.cuda this shows the order of
    the calls only, not what cuBLAS does; a torch without the private function captures without it."""
    cuda = FakeCuda(monkeypatch)
    monkeypatch.setattr(
        torch._C,
        "_cuda_clearCublasWorkspaces",
        lambda: cuda.log.append("cuBLAS workspaces cleared"),
        raising=False,
    )
    model, x = linear_model(), torch.randn(1, 4)
    with torch.inference_mode():
        capture_encoder(cuda.traced(run), model, x, [model])
    cleared, begins, ends = "cuBLAS workspaces cleared", "capture begins", "capture ends"
    assert cuda.log[:4] == [cleared, begins, ends, cleared] and cuda.log.count(cleared) == 2

    def fails_in_the_capture(module, x):
        if cuda.capturing is not None:
            raise RuntimeError("operation not permitted when stream is capturing")
        return run(module, x)

    monkeypatch.setattr(
        torch._C, "_cuda_endAllocateToPool", lambda *pool: cuda.log.append("pool routing ended")
    )
    cuda.log.clear()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="operation not permitted"):
        capture_encoder(fails_in_the_capture, model, x, [model])
    assert cuda.log == [cleared, begins, ends, "pool routing ended", cleared]
    monkeypatch.delattr(torch._C, "_cuda_clearCublasWorkspaces", raising=False)
    with torch.inference_mode():
        assert capture_encoder(cuda.traced(run), model, x, [model]).max_diff == 0.0


def test_the_apps_free_gpu_memory_empties_the_cache_under_the_capture_lock(monkeypatch):
    """During a capture, empty_cache still frees dropped graphs' pools (cudaFree), which makes the capture fail: the
    app's free_gpu_memory (after one session ran out of memory) waits for another session's capture to end."""
    from uvosam.encoder_graphs import CAPTURE_LOCK
    from uvosam_app.gpu import free_gpu_memory

    held = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: held.append(CAPTURE_LOCK.locked()))
    free_gpu_memory()
    assert held == [True] and not CAPTURE_LOCK.locked()
