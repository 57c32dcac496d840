"""The limits and defaults of one app process, read from environment variables (``AppSettings.from_env``).
Nothing here imports gradio.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvosam.config import SAM2_MODEL_TYPES, SAM_PRECISIONS, VideoLimits
from uvosam.devices import check_device
from uvosam.errors import InputError
from uvosam_app.gpu import default_device, zero_gpu
from uvosam_app.models import PRESETS, mask_models, sam2_missing
from uvosam_app.server_log import LEVELS

# Gradio's file cache (uploads, served outputs): its sweep (``uvosam_app.served.ServedFiles``, app.py) runs every
# FILE_SWEEP_EVERY_S and deletes the files older than FILE_MAX_AGE_S; FILES_KEPT is how long, as the texts say it
FILE_SWEEP_EVERY_S = 600
FILE_MAX_AGE_S = 3600


def about(seconds: float) -> str:
    """A duration as the texts say it, roughly: "about an hour", "about 2 hours", "about 10 minutes"."""
    hours, minutes = seconds / 3600, max(1, round(seconds / 60))
    if hours >= 1 and hours == round(hours):
        return "about an hour" if hours == 1 else f"about {round(hours)} hours"
    return "about a minute" if minutes == 1 else f"about {minutes} minutes"


FILES_KEPT = about(FILE_MAX_AGE_S)


def _env_number(
    environ: Mapping[str, str], name: str, default: float, kind: type, *, zero: bool = False
) -> Any:
    """``name``'s positive number (``zero``: or 0, which means "no limit"), or ``default`` when it is unset."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    # nan passed ``value <= 0`` (and then no limit held: every comparison with it is False); inf is no limit either
    if value is None or not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        what = "a finite positive float" if kind is float else f"a positive {kind.__name__}"
        what += " or 0" if zero else ""
        raise InputError(f"{name} must be {what}; got {raw!r}. Unset it or fix its value.")
    return value


def _env_folder(environ: Mapping[str, str], name: str) -> Path | None:
    """The folder a variable names, made if missing (None: unset), or a refusal saying why it cannot be used: read
    with the settings, before any model loads (a folder that could not be made failed with a bare traceback once
    the models had loaded)."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    path = Path(raw).expanduser()
    why = folder_unusable(path)
    if why:
        raise InputError(
            f"{name}={raw} cannot be used: {why}. Set it to a folder this process can create and write in, or "
            "unset it (the app then uses a fresh temp folder)."
        )
    return path


def folder_unusable(path: Path) -> str | None:
    """Why the app cannot keep its work in ``path`` (made here if missing), or None: it makes a folder and a file
    in it, as a run does, and removes them."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "it is a file, not a folder"
    except OSError as err:
        return f"the folder cannot be made ({err.strerror or err})"
    probe = None
    try:
        probe = Path(tempfile.mkdtemp(prefix=".uvosam-check-", dir=path))
        (probe / "check").write_bytes(b"")
    except OSError as err:
        return f"nothing can be written in it ({err.strerror or err})"
    finally:
        if probe is not None:
            shutil.rmtree(probe, ignore_errors=True)
    return None


_FLAGS = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}


def _env_flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = _FLAGS.get(raw.strip().lower())
    if value is None:
        raise InputError(
            f"{name} must be 1 or 0 (true/false, yes/no, on/off); got {raw!r}. Unset it or fix its value."
        )
    return value


@dataclass(frozen=True)
class AppSettings:
    """Limits and defaults of one app process (environment variables in brackets).

    Attributes:
        max_frames: most frames processed per run, after stride [UVOSAM_MAX_FRAMES].
        max_seconds: longest accepted video duration covered by a run, in seconds
            [UVOSAM_MAX_SECONDS].
        max_side: longest frame side a run processes, in pixels: larger frames are decoded scaled down to it
            (``JobOptions.fit_side``), not refused; only absurd ones are (``limits``) [UVOSAM_MAX_SIDE].
        max_upload_mb: upload size limit in MiB (``launch(max_file_size=...)``)
            [UVOSAM_MAX_UPLOAD_MB].
        concurrency_limit: runs on the GPU at once [UVOSAM_CONCURRENCY].
        max_queue: most waiting runs; more are refused with "queue full" [UVOSAM_MAX_QUEUE].
        waiting_per_session: most runs one session (an API client) may have waiting; more are refused with what
            to do (``uvosam_app.queue_turns``); 0: no limit [UVOSAM_WAITING_PER_SESSION].
        default_preset, default_sam: models loaded at start [UVOSAM_TRACKER, UVOSAM_SAM]; ``default_sam`` is
            one of ``mask_models()`` (vit_b, vit_l, vit_h, and sam2.1_tiny ... when the sam2 package is installed).
        work_root: folder for per-session run folders (default: a fresh temp folder)
            [UVOSAM_WORK_DIR].
        chunk_seconds: length of the streamed video chunks.
        status_interval_s: the longest gap between two updates sent to the browser (the status line's
            clock; a cancel does not wait for it).
        session_ttl_s: a session's results are deleted this long after its last run (or when its
            tab closes).
        url_input: offer "a direct link to a video file" under the upload (downloaded by the server, at most
            ``max_upload_mb``) [UVOSAM_URL_INPUT, 1 or 0].
        url_allow_private: let links reach loopback, private and link-local addresses (a local app on a LAN);
            never on a public Space, where it would let users reach the host's own network
            [UVOSAM_URL_ALLOW_PRIVATE, 1 or 0].
        url_timeout_s: longest a link's download may take, in seconds.
        sam_precision: the mask model's image encoder: ``auto`` (bf16 on a GPU or CPU that computes bf16 natively:
            compute capability 8.0 on, AVX512-BF16 or AMX; else float32), ``bf16`` or ``fp32`` (the model's own
            forward) [UVOSAM_SAM_PRECISION].
        cuda_graph: replay the mask model's image encoder from a CUDA graph (``SegmenterConfig.cuda_graph``;
            captured during the warm-up at load), as the command line's ``--cuda-graph``; CUDA only (elsewhere a
            warning in the log, and the usual forward); refused on ZeroGPU, whose GPU is lent per call
            [UVOSAM_CUDA_GRAPH, 1 or 0].
        preload: more tracker presets and mask models to load at start, each with the other default model
            [UVOSAM_PRELOAD, comma-separated, e.g. ``vit_h,sam2.1_tiny,idol-ovis-r50``].
        start_models_only: offer only the models loaded at start (the defaults and ``preload``); set on ZeroGPU,
            whose CUDA emulation lets models load only in the main thread at start [from ``SPACES_ZERO_GPU``].
        log_level: the server log's level, one of ``server_log.LEVELS`` (any case) [UVOSAM_LOG_LEVEL].
        device: where the models run: ``auto`` (CUDA where there is a GPU or ZeroGPU, else the CPU), or a device
            torch takes and this machine has: ``cpu``, ``cuda:1``, ``mps`` (an Apple GPU; never picked by ``auto``)
            [UVOSAM_DEVICE]. Checked at start (``uvosam.devices.check_device``); ZeroGPU takes ``auto`` or ``cuda``.
    """

    max_frames: int = 900
    max_seconds: float = 120.0
    max_side: int = 1920
    max_upload_mb: int = 200
    concurrency_limit: int = 1
    max_queue: int = 16
    waiting_per_session: int = 1
    default_preset: str = PRESETS[0]
    default_sam: str = "vit_b"
    work_root: Path | None = None
    chunk_seconds: float = 1.0
    status_interval_s: float = 0.5
    session_ttl_s: float = 3600.0
    url_input: bool = True
    url_allow_private: bool = False
    url_timeout_s: float = 60.0
    sam_precision: str = "auto"
    cuda_graph: bool = False
    preload: tuple[str, ...] = ()
    start_models_only: bool = False
    log_level: str = "INFO"
    device: str = "auto"

    def __post_init__(self) -> None:
        self._check_device()
        if self.sam_precision not in SAM_PRECISIONS:
            raise InputError(
                f"UVOSAM_SAM_PRECISION (AppSettings.sam_precision) must be one of {tuple(SAM_PRECISIONS)}; got "
                f"{self.sam_precision!r}"
            )
        if self.waiting_per_session < 0:  # from the environment: refused there (``_env_number``)
            raise InputError(
                "UVOSAM_WAITING_PER_SESSION (AppSettings.waiting_per_session) must be a positive int or 0 (no "
                f"limit); got {self.waiting_per_session!r}"
            )
        if self.cuda_graph and zero_gpu():
            raise InputError(
                "UVOSAM_CUDA_GRAPH (AppSettings.cuda_graph) cannot be on on ZeroGPU: its GPU is lent per call, and a "
                "captured graph would outlive it. Unset it."
            )
        level = str(self.log_level).strip().upper()  # any case
        if level not in LEVELS:
            raise InputError(
                f"UVOSAM_LOG_LEVEL (AppSettings.log_level) must be one of {', '.join(LEVELS)}; got "
                f"{self.log_level!r}"
            )
        object.__setattr__(self, "log_level", level)
        if self.default_preset not in PRESETS:
            raise InputError(
                f"UVOSAM_TRACKER (AppSettings.default_preset) must be one of {PRESETS}; got {self.default_preset!r}"
            )
        offered = mask_models()
        if self.default_sam not in offered:
            why = f" ({sam2_missing()})" if self.default_sam in SAM2_MODEL_TYPES else ""
            raise InputError(
                f"UVOSAM_SAM (AppSettings.default_sam) must be one of {offered}; got {self.default_sam!r}{why}"
            )
        unknown = [name for name in self.preload if name not in PRESETS + offered]
        if unknown:
            raise InputError(
                f"UVOSAM_PRELOAD (AppSettings.preload) takes tracker presets {PRESETS} and mask models {offered}; "
                f"got {', '.join(map(repr, unknown))}"
            )

    def _check_device(self) -> None:
        device = str(self.device).strip().lower()
        object.__setattr__(self, "device", device)
        if zero_gpu():
            if device not in ("auto", "cuda"):
                raise InputError(
                    f"UVOSAM_DEVICE (AppSettings.device) must be auto or cuda on ZeroGPU (its GPU is CUDA); got "
                    f"{device!r}. Unset it."
                )
            return
        try:
            check_device(device, option="UVOSAM_DEVICE")
        except InputError as err:
            raise InputError(f"{err}. Unset it (AppSettings.device) for auto.") from None
        # cpu:0 is the CPU (torch has one): the texts compare with "cpu"
        if device.split(":")[0] == "cpu":
            object.__setattr__(self, "device", "cpu")

    def run_device(self) -> str:
        """The device the models run on: ``device``, with ``auto`` as ``gpu.default_device`` picks."""
        return default_device() if self.device == "auto" else self.device

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        """Defaults overridden by the environment variables named in the class docstring."""
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            max_frames=_env_number(env, "UVOSAM_MAX_FRAMES", d.max_frames, int),
            max_seconds=_env_number(env, "UVOSAM_MAX_SECONDS", d.max_seconds, float),
            max_side=_env_number(env, "UVOSAM_MAX_SIDE", d.max_side, int),
            max_upload_mb=_env_number(env, "UVOSAM_MAX_UPLOAD_MB", d.max_upload_mb, int),
            concurrency_limit=_env_number(env, "UVOSAM_CONCURRENCY", d.concurrency_limit, int),
            max_queue=_env_number(env, "UVOSAM_MAX_QUEUE", d.max_queue, int),
            waiting_per_session=_env_number(
                env, "UVOSAM_WAITING_PER_SESSION", d.waiting_per_session, int, zero=True
            ),
            default_preset=env.get("UVOSAM_TRACKER") or d.default_preset,
            default_sam=env.get("UVOSAM_SAM") or d.default_sam,
            work_root=_env_folder(env, "UVOSAM_WORK_DIR"),
            url_input=_env_flag(env, "UVOSAM_URL_INPUT", d.url_input),
            url_allow_private=_env_flag(env, "UVOSAM_URL_ALLOW_PRIVATE", d.url_allow_private),
            sam_precision=(env.get("UVOSAM_SAM_PRECISION") or d.sam_precision).strip().lower(),
            cuda_graph=_env_flag(env, "UVOSAM_CUDA_GRAPH", d.cuda_graph),
            preload=tuple(n.strip() for n in env.get("UVOSAM_PRELOAD", "").split(",") if n.strip()),
            start_models_only=zero_gpu(),
            log_level=env.get("UVOSAM_LOG_LEVEL") or d.log_level,
            device=env.get("UVOSAM_DEVICE") or d.device,
        )

    def presets(self) -> tuple[str, ...]:
        """The tracker presets offered: all, or (``start_models_only``) those loaded at start."""
        return tuple(p for p in PRESETS if not self.start_models_only or p in self._at_start())

    def mask_models(self) -> tuple[str, ...]:
        """The mask models offered: all this process can run, or (``start_models_only``) those loaded at start."""
        return tuple(
            m for m in mask_models() if not self.start_models_only or m in self._at_start()
        )

    def start_pairs(self) -> list[tuple[str, str]]:
        """(tracker preset, mask model) pairs loaded at start: the defaults, then each ``preload`` tracker with the
        default mask model and each ``preload`` mask model with the default tracker (models are shared between
        pairs: every offered pair is then loaded)."""
        pairs = [(self.default_preset, self.default_sam)]
        for name in self.preload:
            pair = (name, self.default_sam) if name in PRESETS else (self.default_preset, name)
            if pair not in pairs:
                pairs.append(pair)
        return pairs

    def _at_start(self) -> set[str]:
        return {self.default_preset, self.default_sam, *self.preload}

    def limits(self) -> VideoLimits:
        """What Run refuses: more frames or seconds than the app's limits, and frames over ``VideoLimits``' own
        sanity limits, 4096 px a side and 4096x2304 px (or ``max_side`` and 9/16 of its square, when that is
        larger): a phone's 4K (3840x2160, 4096x2160) runs, scaled down to ``max_side``, but an 8K video, whose
        decoding alone costs 4x a 4K one's before it is scaled down, is refused."""
        side = max(self.max_side, VideoLimits.max_side)
        return VideoLimits(
            max_frames=self.max_frames, max_side=side, max_duration_s=self.max_seconds,
            max_pixels=side * side * 9 // 16,
        )  # fmt: skip
