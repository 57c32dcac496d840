"""Where bf16 counts as native: GPUs of compute capability 8.0 on (not a T4 or V100, where torch's
``is_bf16_supported()`` is True by emulation), CPUs with AVX512-BF16/AMX. SAM's fast path, training's ``amp="auto"``,
``uvosam info`` and the app's footer follow it."""

import pytest
import torch
from model_helpers import with_random_rel_pos
from script_helpers import load_benchmark
from torch._subclasses.fake_tensor import FakeTensorMode

from uvosam import box_segmenter, devices, environment, provenance
from uvosam.box_segmenter import bf16_is_native
from uvosam.config import SegmenterConfig
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import tiny_sam
from uvosam.train.loop import amp_dtype
from uvosam_app import footer

T4, V100, A10G, A100, H100 = (7, 5), (7, 0), (8, 6), (8, 0), (9, 0)


@pytest.fixture
def capability(monkeypatch):
    """Set the compute capability torch reports for every CUDA device."""

    def set_capability(value: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: value)

    return set_capability


@pytest.mark.parametrize(
    ("cc", "native"), [(T4, False), (V100, False), (A100, True), (A10G, True), (H100, True)]
)
def test_cuda_bf16_is_native_from_compute_capability_8_0(capability, cc, native):
    capability(cc)
    assert devices.cuda_has_bf16() is native
    assert bf16_is_native(torch.device("cuda", 0)) is native


@pytest.mark.parametrize("cpu_native", [False, True])
def test_other_devices(monkeypatch, capability, cpu_native):
    capability(H100)
    monkeypatch.setattr(box_segmenter, "cpu_has_bf16", lambda: cpu_native)
    assert bf16_is_native(torch.device("cpu")) is cpu_native
    assert bf16_is_native(torch.device("mps")) is False


def _fake_cuda_segmenter(config: SegmenterConfig) -> BoxPromptSegmenter:
    """A tiny SAM on a fake CUDA device (no GPU needed: no data is computed, only devices and shapes)."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        return BoxPromptSegmenter(load_benchmark("gpu_launches").to_fake_cuda(tiny_sam()), config)


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize(("cc", "fast"), [(T4, False), (V100, False), (A10G, True), (H100, True)])
def test_sams_fast_path_defaults_on_only_where_the_gpu_computes_bf16(capability, cc, fast):
    capability(cc)
    segmenter = _fake_cuda_segmenter(SegmenterConfig())
    assert segmenter.device.type == "cuda" and segmenter.fast is fast
    assert _fake_cuda_segmenter(SegmenterConfig(fast=True)).fast is True  # an explicit choice wins


@pytest.mark.parametrize(("cc", "dtype"), [(T4, torch.float16), (A100, torch.bfloat16)])
def test_training_amp_auto_takes_fp16_where_bf16_is_emulated(capability, cc, dtype):
    capability(cc)
    assert amp_dtype("auto", torch.device("cuda", 0)) == dtype
    assert amp_dtype("bf16", torch.device("cuda", 0)) == torch.bfloat16  # asked for: kept
    assert amp_dtype("auto", torch.device("cpu")) is None


@pytest.mark.parametrize(("cc", "word"), [(T4, "emulated"), (H100, "native")])
def test_info_and_footer_say_whether_the_gpu_computes_bf16(monkeypatch, capability, cc, word):
    capability(cc)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    class Props:
        name, total_memory = "Some GPU", 16 * 2**30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "Some GPU")
    assert environment.device_summary() == f"cuda: Some GPU (16 GiB, bf16 {word})"
    shown = footer.device_text("cuda")
    assert shown.startswith("cuda (Some GPU") and ("no native bf16" in shown) is (
        word == "emulated"
    )


@pytest.mark.parametrize(
    ("cc", "precision", "effect"),
    [
        (T4, "bf16", "runs emulated"),
        (V100, "tf32", "does not exist"),
        (H100, "bf16", None),
        (T4, "fp32", None),
    ],
)
def test_a_precision_the_gpu_lacks_is_named(capability, cc, precision, effect):
    capability(cc)
    note = devices.slow_precision_note("the tracker", precision, torch.device("cuda", 0))
    if effect is None:
        assert note is None
    else:
        assert (
            f"the tracker: {precision} asked for on a GPU of compute capability {cc[0]}.{cc[1]}"
            in note
        )
        assert effect in note and "Use fp32" in note
    assert devices.slow_precision_note("the tracker", precision, torch.device("cpu")) is None


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize(("cc", "warned"), [(T4, True), (A10G, False)])
def test_bf16_asked_for_on_a_gpu_without_it_is_logged(capability, caplog, cc, warned):
    capability(cc)
    with caplog.at_level("WARNING", logger="uvosam.box_segmenter"):
        assert (
            _fake_cuda_segmenter(SegmenterConfig(fast=True)).fast is True
        )  # still done: it was asked for
        _fake_cuda_segmenter(SegmenterConfig())  # the default asks for nothing
    notes = [r.getMessage() for r in caplog.records]
    expected = (
        "SAM's encoder: bf16 asked for on a GPU of compute capability 7.5 (8.0 or later has bf16 tensor cores): it "
        "runs emulated, slower than fp32. Use fp32 on this GPU."
    )
    assert notes == ([expected] if warned else [])


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize(("precision", "warned"), [("tf32", True), ("fp32", False)])
def test_load_tracker_logs_a_precision_the_gpu_lacks(
    monkeypatch, capability, caplog, precision, warned
):
    from uvosam.testing import tiny_idol_tracker
    from uvosam.tracker import loading

    capability(T4)
    with FakeTensorMode(allow_non_fake_inputs=True):
        detector = load_benchmark("gpu_launches").to_fake_cuda(
            tiny_idol_tracker(precision=precision).detector
        )
    monkeypatch.setattr(loading.hub, "resolve", lambda weights, **kw: weights)
    monkeypatch.setattr(loading, "load_idol_detector", lambda path, cfg, **kw: detector)
    with caplog.at_level("WARNING", logger="uvosam.tracker.loading"):
        loading.load_tracker("idol.pth", device="cuda")
    assert any("the tracker: tf32 asked for" in r.getMessage() for r in caplog.records) is warned


@pytest.mark.filterwarnings("ignore:CUDA is not available")
@pytest.mark.parametrize(
    ("cc", "config", "encode"),
    [
        (
            T4,
            SegmenterConfig(),
            "sdpa_encode",
        ),  # the default there: float32, attention through SDPA
        (
            T4,
            SegmenterConfig(fast=False),
            "plain_encode",
        ),  # fp32 asked for: SAM's own forward, as the release
        (H100, SegmenterConfig(), "fast_encode"),
        (H100, SegmenterConfig(fast=False), "plain_encode"),
    ],
)
def test_a_gpu_without_native_bf16_runs_sams_encoder_in_float32_with_sdpa(
    capability, cc, config, encode
):
    capability(cc)
    segmenter = _fake_cuda_segmenter(config)
    assert segmenter._encode_fn.__name__ == encode
    assert segmenter.describe()["sdpa_float32"] is (encode == "sdpa_encode")
    said = provenance._mask_model_text(
        segmenter.describe()
    )  # what README.txt says of the mask model
    assert ("float32 with SDPA attention" in said) is (encode == "sdpa_encode")


def test_the_float32_sdpa_encoder_computes_sams_forward():
    from uvosam.segmenter import plain_encode, sdpa_encode

    # a zero rel-pos bias (SAM's init) passed whatever the bias did
    encoder = with_random_rel_pos(tiny_sam().image_encoder)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = plain_encode(encoder, x)
        got = sdpa_encode(encoder, x)
    assert got.dtype == torch.float32 and (got - expected).abs().max() < 1e-4
