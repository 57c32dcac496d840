"""The counting machinery of ``benchmarks/gpu_launches.py``: a ``TorchDispatchMode`` that logs, per stage of the
CUDA path, the ops that launch kernels, host<->device copies, reads and data-dependent ops of modules on a fake CUDA
device (``FakeTensorMode``), and the helpers that put models there. See that script's docstring for what counts."""

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import torch
import torch.utils._pytree as pytree
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary

aten = torch.ops.aten
SITE_ROOTS = ("/uvosam/", "/segment_anything/", "/sam2/")
STAGE_MARKERS = {  # (file name, function) on the stack, innermost first -> stage
    ("box_segmenter.py", "_boxes_on_device"): "sam boxes upload",
    ("sam_fast.py", "rel_pos_table"): "sam rel-pos tables",
    ("image_encoder.py", "get_rel_pos"): "sam rel-pos tables",
    ("box_segmenter.py", "_run_encoder"): "sam image encoder",
    ("segmenter.py", "_encode"): "sam preprocess",
    ("sam2_segmenter.py", "_encode"): "sam preprocess",
    ("box_segmenter.py", "_decode"): "sam prompt+mask decoder",
    ("box_segmenter.py", "_finish"): "sam finish",
    ("detector.py", "forward"): "idol forward",
    ("preprocess.py", "pad_and_normalize"): "idol preprocess",
    ("detector.py", "detect_frames"): "idol outputs",
    ("postprocess.py", "iter_steps"): "idol postprocess",
}
NO_LAUNCH = {aten.empty.memory_format, aten.empty_strided.default, aten.empty_like.default,
             aten.new_empty.default, aten.new_empty_strided.default, aten.lift_fresh.default}  # fmt: skip
DATA_DEPENDENT = {aten.nonzero.default, aten.masked_select.default, aten._unique2.default,
                  aten.unique_consecutive.default, aten.unique_dim.default,
                  aten.repeat_interleave.Tensor, aten.masked_scatter.default}  # fmt: skip
KINDS = ("h2d", "d2h", "data-dep")


@dataclass(frozen=True)
class Event:
    """One copy, read or data-dependent op: ``kind`` in ``KINDS``, op index (order), stage, what, site."""

    kind: str
    index: int
    stage: str
    what: str
    site: str


@dataclass
class Record:
    """What one counted call dispatched: launches per stage (and per stage and site) and the events."""

    launches: Counter = field(default_factory=Counter)
    launch_sites: Counter = field(default_factory=Counter)
    events: list[Event] = field(default_factory=list)
    ops: int = 0
    spans: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # stage -> (first, last op index)

    def count(self, stage: str, kind: str) -> int:
        return sum(e.kind == kind and e.stage == stage for e in self.events)


def _stage_and_site() -> tuple[str, str]:
    """The stage (``STAGE_MARKERS``) and the innermost file:line in ``SITE_ROOTS`` of the running op."""
    stage, site = "other", "?"
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if site == "?" and any(root in name for root in SITE_ROOTS):
            site = f"{_short_path(name)}:{frame.f_lineno}"
        key = (Path(name).name, frame.f_code.co_name)
        if key in STAGE_MARKERS:
            stage = STAGE_MARKERS[key]
            break
        frame = frame.f_back
    return stage, site


def _short_path(name: str) -> str:
    """``.../site-packages/sam2/x.py`` -> ``sam2/x.py``; ``<repo>/uvosam/x.py`` -> ``uvosam/x.py``."""
    if "site-packages/" in name:
        return name.split("site-packages/")[-1]
    return "uvosam/" + name.rsplit("/uvosam/", 1)[-1]


def _is_fake_cuda(t: torch.Tensor) -> bool:
    return isinstance(t, FakeTensor) and t.device.type == "cuda"


class LaunchCounter(TorchDispatchMode):
    """Counts launches, copies, reads and data-dependent ops of fake-CUDA code into ``record`` (see the module
    docstring). Ops on real CPU tensors only run for real (the host side: e.g. post-processing read-back data)."""

    def __init__(self, fake: FakeTensorMode, *, real_host: bool = True) -> None:
        super().__init__()
        self.fake = fake
        self.real_host = real_host
        self.record = Record()
        self.known: WeakTensorKeyDictionary = (
            WeakTensorKeyDictionary()
        )  # fake -> real values uploaded
        self.pinned: WeakTensorKeyDictionary = WeakTensorKeyDictionary()  # host tensors made pinned

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        leaves = pytree.tree_leaves((args, kwargs))
        to_cuda = any(isinstance(a, torch.device) and a.type == "cuda" for a in leaves)
        if self.real_host and not to_cuda and not any(isinstance(t, FakeTensor) for t in tensors):
            return self._run_on_host(func, args, kwargs)
        self.record.ops += 1
        stage, site = _stage_and_site()
        first, _ = self.record.spans.get(stage, (self.record.ops, 0))
        self.record.spans[stage] = (first, self.record.ops)
        special = self._copy_or_read(func, args, kwargs, stage, site)
        if special is not None:
            return special[0]
        self._note_mixed(func, tensors, stage, site)
        out = self._run(func, args, kwargs, tensors, stage, site)
        if self._launches(func, tensors, out):
            self.record.launches[stage] += 1
            self.record.launch_sites[(stage, site)] += 1
        return out

    def _run_on_host(self, func, args, kwargs):
        """A host op for real; a pinned allocation (no GPU here) is made in ordinary memory and remembered."""
        pinned = kwargs.get("pin_memory") is True
        with unset_fake_temporarily():
            out = func(*args, **{**kwargs, "pin_memory": False} if pinned else kwargs)
        if pinned:
            self.pinned[out] = True
        return out

    def _event(self, kind: str, stage: str, what: str, site: str) -> None:
        self.record.events.append(Event(kind, self.record.ops, stage, what, site))

    def _copy_or_read(self, func, args, kwargs, stage, site) -> tuple | None:
        """(result,) for a D2H copy or read (answered here), after noting an H2D copy; else None."""
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if func is aten._local_scalar_dense.default:
            self._event("d2h", stage, f"item/tolist/bool {src.dtype}", site)
            real = self.known.get(src)
            return (real.item() if real is not None else _plausible_scalar(src.dtype),)
        if _is_copy(func) and src is not None:
            named = _named_args(func, args, kwargs)
            other = named.get("other")
            dst = torch.device(named.get("device") or (other if other is not None else src).device)
            dtype = named.get("dtype") or (other if other is not None else src).dtype
            nb = named.get("non_blocking", False)
            shape = f"{tuple(src.shape)} {str(dtype).removeprefix('torch.')}"
            if _is_fake_cuda(src) and dst.type == "cpu":
                self._event("d2h", stage, f"copy {shape}", site)
                return (self._read_back(src, dtype),)
            if not isinstance(src, FakeTensor) and dst.type == "cuda":
                pinned = src in self.pinned or (src._base is not None and src._base in self.pinned)
                self._event("h2d", stage, f"copy {shape} non_blocking={nb} pinned={pinned}", site)
        if func is aten.copy_.default and args[0].device.type != args[1].device.type:
            kind = "h2d" if args[0].device.type == "cuda" else "d2h"
            self._event(kind, stage, f"copy_ {tuple(args[1].shape)}", site)
        return None

    def _read_back(self, src: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """A real CPU tensor for a D2H copy: the uploaded values if known, else random ones."""
        real = self.known.get(src)
        with unset_fake_temporarily():
            if real is not None:
                return real.to(dtype)
            if dtype == torch.bool:
                return torch.rand(src.shape) > 0.5
            return torch.rand(src.shape).to(dtype)

    def _note_mixed(self, func, tensors, stage, site) -> None:
        """An op other than a copy with a CPU tensor of 1+ dims next to CUDA ones copies it implicitly."""
        if _is_copy(func) or func is aten.copy_.default:
            return
        cpu = [t for t in tensors if t.device.type == "cpu" and t.dim() > 0]
        if cpu and any(_is_fake_cuda(t) for t in tensors):
            self._event(
                "h2d", stage, f"{func.name()} takes a CPU tensor {tuple(cpu[0].shape)}", site
            )

    def _run(self, func, args, kwargs, tensors, stage, site):
        """``func`` on the fake tensors; data-dependent ops are noted and given a plausible size."""
        bool_index = func in (aten.index.Tensor, aten.index_put_.default) and any(
            i is not None and i.dtype == torch.bool for i in args[1]
        )
        if func in DATA_DEPENDENT or bool_index:
            self._event("data-dep", stage, func.name(), site)
            if func is aten.nonzero.default:
                return args[0].new_empty((1, args[0].dim()), dtype=torch.long)
        fake_args, fake_kwargs = pytree.tree_map_only(
            torch.Tensor,
            lambda t: t if isinstance(t, FakeTensor) else self.fake.from_tensor(t),
            (args, kwargs),
        )
        out = func(*fake_args, **fake_kwargs)
        self._remember(func, args, kwargs, tensors, out)
        return out

    def _remember(self, func, args, kwargs, tensors, out) -> None:
        """Keep the real values of small uploads and of views of them (``_read_back`` answers with them)."""
        if _is_copy(func) and not isinstance(args[0], FakeTensor):
            if args[0].numel() <= 4096:
                self.known[out] = args[0].clone()
        elif isinstance(out, torch.Tensor) and tensors and tensors[0] in self.known:
            if _aliases(out, tensors):
                with unset_fake_temporarily():
                    real = func(self.known[tensors[0]], *args[1:], **kwargs)
                self.known[out] = real
        elif isinstance(out, (tuple, list)) and tensors and tensors[0] in self.known:
            with unset_fake_temporarily():
                reals = func(self.known[tensors[0]], *args[1:], **kwargs)
            for fake, real in zip(out, reals, strict=False):
                self.known[fake] = real

    @staticmethod
    def _launches(func, tensors, out) -> bool:
        """Whether the op writes a tensor: in place, or an output that is not an input's storage."""
        if func in NO_LAUNCH or (func is aten.copy_.default and _crosses(tensors)):
            return False
        if _is_copy(func):
            return not _crosses([tensors[0], *_as_list(out)]) and not _aliases(out, tensors)
        if func._schema.is_mutable:
            return True
        outs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        return any(not _aliases(t, tensors) for t in outs)


def _is_copy(func) -> bool:
    """``_to_copy`` or an overload of ``Tensor.to``."""
    return func is aten._to_copy.default or func.name().startswith("aten::to.")


def _named_args(func, args, kwargs) -> dict:
    """``args`` and ``kwargs`` of ``func`` by their schema names."""
    names = [a.name for a in func._schema.arguments]
    return {**dict(zip(names, args, strict=False)), **kwargs}


def _crosses(tensors: list[torch.Tensor]) -> bool:
    """Whether ``tensors`` are on more than one device type (a copy between them is no kernel launch)."""
    return len({t.device.type for t in tensors}) > 1


def _as_list(out) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def _aliases(t: torch.Tensor, tensors: list[torch.Tensor]) -> bool:
    ref = StorageWeakRef(t.untyped_storage())
    return any(StorageWeakRef(s.untyped_storage()) == ref for s in tensors)


def _plausible_scalar(dtype: torch.dtype) -> bool | int | float:
    """What an ``item()`` of unknown data returns: False, 1 or 0.5."""
    if dtype == torch.bool:
        return False
    return 0.5 if dtype.is_floating_point else 1


def to_fake_cuda(module: torch.nn.Module) -> torch.nn.Module:
    """Move a module built under ``FakeTensorMode`` to the fake ``cuda`` device, in place (parameters are
    replaced, not swapped: ``nn.Module.to`` would swap a fake tensor's data across device types)."""
    for m in module.modules():
        for name, p in m._parameters.items():
            if p is not None and p.device.type != "cuda":
                m._parameters[name] = torch.nn.Parameter(p.to("cuda"), p.requires_grad)
        for name, b in m._buffers.items():
            if b is not None and b.device.type != "cuda":
                m._buffers[name] = b.to("cuda")
    return module


FAKE_CAPABILITY = (9, 0)
"""The compute capability the fake CUDA device reports: an H100's (bf16 native, so SAM's fast path is on by default,
as on the GPUs it runs on)."""


@contextmanager
def fake_cuda_capability() -> Iterator[None]:
    """``torch.cuda.get_device_capability`` answers ``FAKE_CAPABILITY`` (without a driver it raises)."""
    with mock.patch.object(torch.cuda, "get_device_capability", lambda *a, **k: FAKE_CAPABILITY):
        yield


@contextmanager
def cuda_reported_available() -> Iterator[None]:
    """Let ``torch.autocast("cuda")`` switch on for fake CUDA tensors (it is disabled without CUDA)."""
    with (
        mock.patch.object(torch.cuda, "is_available", lambda: True),
        mock.patch.object(torch.cuda, "is_bf16_supported", lambda *a, **k: True),
    ):
        yield


@contextmanager
def triton_stand_in() -> Iterator[None]:
    """The deformable-attention dispatcher picks a stand-in of the Triton kernel: the wrapper's
    ``.contiguous()`` calls and one launch (``ops/function.py``)."""
    from uvosam.tracker import msda

    def msda_triton(value, spatial_shapes, level_start_index, loc, attn):
        value, loc, attn = (t.contiguous() for t in (value, loc, attn))
        n, _, m, d = value.shape
        return value.new_empty((n, loc.shape[1], m * d)).zero_()  # the one kernel launch

    with mock.patch.object(msda, "load_kernel", lambda: msda.KernelLoad(msda_triton, "stand-in")):
        yield


def count(fn: Callable[[], object]) -> Record:
    """``fn()`` under a fresh ``LaunchCounter``; its record (``fn`` runs inside the caller's FakeTensorMode)."""
    counter = LaunchCounter(detect_fake_mode())
    with counter:
        fn()
    return counter.record
