"""SegmenterConfig.cuda_graph on a CPU: the option's checks, the eager run where CUDA is missing, and the bookkeeping of
uvosam.encoder_graphs (one graph per input shape, a new capture after the weights change, one warning and eager after
a failed capture, one replay at a time) with a stand-in for the CUDA capture. The CUDA graphs themselves: test_gpu.py.
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import torch

from uvosam import provenance
from uvosam.config import SegmenterConfig
from uvosam.encoder_graphs import EncoderGraphs, output_difference, weights_stamp
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
    of the input (what a graph computes); it counts captures and replays, and notes two replays at once."""

    def __init__(self, fail: Exception | None = None, replay_s: float = 0.0) -> None:
        self.fail = fail
        self.replay_s = replay_s
        self.captured: list[tuple] = []
        self.replays = 0
        self.inside = 0
        self.overlapped = False

    def __call__(self, fn, module, x):
        if self.fail is not None:
            raise self.fail
        self.captured.append(tuple(x.shape))
        outer = self

        class Captured:
            stamp = weights_stamp(module)
            max_diff = 0.0
            static_input = x.clone()

            def replay(self, x):
                outer.inside += 1
                outer.overlapped |= outer.inside > 1
                self.static_input.copy_(x)
                time.sleep(outer.replay_s)
                out = fn(module, self.static_input).clone()
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
    assert 0 < output_difference(a, close) < 1e-2
    with pytest.raises(RuntimeError, match="differs from the eager output"):
        output_difference(a, {**same, "backbone_fpn": [torch.arange(4.0) + 0.1, torch.zeros(1)]})
    with pytest.raises(RuntimeError, match="NaN/inf"):
        output_difference(torch.ones(3), torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(RuntimeError, match="another structure"):
        output_difference(a, {"vision_features": torch.ones(2, 3)})
    with pytest.raises(RuntimeError, match="the graph's output is"):
        output_difference(torch.ones(3), torch.ones(3, dtype=torch.bfloat16))
