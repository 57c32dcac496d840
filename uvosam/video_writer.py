"""Video output: stream RGB frames into a browser-playable H.264 mp4, and optionally ~1 s chunks; or
RGBA frames into a VP9 WebM with an alpha channel.

One ffmpeg process (the binary bundled with imageio-ffmpeg) encodes the full file; with chunking
on, one more short-lived process encodes each chunk, so every chunk starts with a keyframe and
plays on its own (what ``gr.Video(streaming=True)`` wants: ``.ts`` or ``.mp4`` paths, H.264
yuv420p, chunks of about 1 s or more; a .ts chunk of a few tiny frames is padded with null packets, so ffprobe reads
it as MPEG-TS). Frames are piped to ffmpeg as they come; nothing is
accumulated in Python.

Encoding: libx264, ``-preset veryfast``, ``yuv420p``, ``+faststart`` for mp4. yuv420p needs even
sizes, so an odd width/height is PADDED by one column/row at the right/bottom that repeats the edge's pixels
(pixels are never rescaled). RGB is converted with the BT.709 matrix to limited range, and the stream is tagged
so (matrix, primaries, transfer bt709, range tv; also the WebM), as players expect of HD video.

With ``alpha=True``: libvpx-vp9 (``-deadline realtime -cpu-used 8``: 50-100 frames/s at 854x480 on
two cores), ``yuva420p``, at the frames' size even when odd (VP9 needs no padding). Chromium-based
browsers play the alpha (Safari shows no VP9 alpha); ffmpeg keeps it only when told to decode with libvpx
(``ffmpeg -c:v libvpx-vp9 -i x.webm ...``), as its own VP9 decoder drops it.

With ``audio``, the full mp4 gets a source video's sound once it is finished (``uvosam.video_audio``: one more ffmpeg
pass, the video copied); if that fails, the video stays silent and a warning says why. Chunks and the WebM have no
sound.
"""

from __future__ import annotations

import errno
import logging
import math
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from uvosam.cleanup import best_effort
from uvosam.config import is_integer
from uvosam.errors import InputError, MissingInputError
from uvosam.ffmpeg_binary import ffmpeg_exe
from uvosam.video_audio import AudioSource, add_audio

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

__all__ = ["CHUNK_FORMATS", "MIN_FPS", "VideoWriter"]

logger = logging.getLogger(__name__)

CHUNK_FORMATS = (".ts", ".mp4")
MIN_FPS = 1e-5
"""The slowest frame rate written (a frame every 100,000 s, 27.8 h): ffmpeg's mp4 muxer refuses the durations
of slower H.264 frames ("Application provided duration ... is invalid") and libvpx its time bases."""
_CLOSE_TIMEOUT_S = 120.0
_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
_VP9_ALPHA = ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p", "-b:v", "0", "-deadline", "realtime",
              "-cpu-used", "8", "-row-mt", "1"]  # fmt: skip
# RGB in, BT.709 limited-range YUV out, and the stream tagged so: untagged, players decode HD as BT.709 and SD as
# BT.601, and ffmpeg's default conversion wrote BT.601 (pure green came out (0, 213, 0) in a BT.709 player)
# the frames' properties win over the encoder's options (ffmpeg 7+), so they are set too
_BT709_FRAMES = "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
_BT709_TAGS = [
    "-colorspace",
    "bt709",
    "-color_primaries",
    "bt709",
    "-color_trc",
    "bt709",
    "-color_range",
    "tv",
]


# ffmpeg's words (strerror) for a full disk and a used-up quota: the error then carries the code, so the app and
# the CLI say the disk is full (``uvosam.errors.write_problem``) rather than quote ffmpeg
_SAID_NO_SPACE = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": getattr(errno, "EDQUOT", 0),
}


def _failure(said: str, message: str) -> OSError:
    """The ``OSError`` of an encoder that stopped: with ``ENOSPC`` (``EDQUOT``) where ffmpeg ``said`` the disk is
    full (quota used up), so its handlers tell the disk apart from a failed encode."""
    code = next((code for words, code in _SAID_NO_SPACE.items() if words in said), 0)
    return OSError(code, message) if code else OSError(message)


class _Encoder:
    """One ffmpeg process: raw rgb24 frames on stdin -> an H.264 file (rgba -> a VP9 file with
    ``alpha``); stderr in a temp file."""

    def __init__(
        self,
        path: Path,
        *,
        fps: float,
        width: int,
        height: int,
        crf: int,
        alpha: bool = False,
        sample_aspect: tuple[int, int] = (1, 1),
    ) -> None:
        self.path = path
        rate = Fraction(fps).limit_denominator(100_000)  # > 0 for fps >= MIN_FPS
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba" if alpha else "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            f"{rate.numerator}/{rate.denominator}",
            "-i",
            "-",
            "-an",
            *(_VP9_ALPHA if alpha else _H264),
            "-crf",
            str(crf),
        ]
        filters = []
        if (width % 2 or height % 2) and not alpha:  # libvpx-vp9 encodes odd sizes as they are
            # the added column/row repeats the edge (smear), so no dark line shows where a player scales
            filters.append("pad=ceil(iw/2)*2:ceil(ih/2)*2:0:0")
            filters.append(f"fillborders=right={width % 2}:bottom={height % 2}:mode=smear")
        if tuple(sample_aspect) != (1, 1):
            num, den = sample_aspect
            # max: setsar rounds to terms up to 100 by default (SAR 1001:1000 became 1:1)
            filters.append(f"setsar={num}/{den}:max={max(num, den, 100)}")
        filters.append(
            f"scale=out_color_matrix=bt709:out_range=tv,format={'yuva420p' if alpha else 'yuv420p'},{_BT709_FRAMES}"
        )
        cmd += ["-vf", ",".join(filters), *_BT709_TAGS]
        if path.suffix.lower() == ".mp4":
            cmd += ["-movflags", "+faststart"]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - ffmpeg's stderr, closed in close()
        self._proc = subprocess.Popen(
            cmd
            # never read as an option ("-x.mp4") or a protocol ("a:b.mp4")
            + [str(path.absolute())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.num_frames = 0

    def _ffmpeg_said(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text[-2000:] or "(nothing)"

    def write(self, data: bytes | memoryview) -> None:
        try:
            self._proc.stdin.write(data)
        except OSError as err:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.debug("ffmpeg still running after a failed write; killing it")
            said = self._ffmpeg_said()
            best_effort(f"writing {self.path.name}", self.abort)
            raise _failure(said, f"ffmpeg stopped while writing {self.path}: {said}") from err
        self.num_frames += 1

    def close(self) -> None:
        """Finish the file; raise ``OSError`` with ffmpeg's message if it failed (the file is then
        removed)."""
        try:
            self._proc.stdin.close()
            code = self._proc.wait(timeout=_CLOSE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as err:
            best_effort(f"writing {self.path.name}", self.abort)
            raise OSError(
                f"ffmpeg did not finish writing {self.path}; the file was removed."
            ) from err
        said = self._ffmpeg_said()
        self._stderr.close()
        if code != 0:
            self.path.unlink(missing_ok=True)
            raise _failure(said, f"ffmpeg failed (exit code {code}) writing {self.path}: {said}")

    def abort(self) -> None:
        """Kill ffmpeg and remove the unfinished file."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for stream in (self._proc.stdin, self._stderr):
            try:
                stream.close()
            except OSError:
                logger.debug("closing a pipe of a killed ffmpeg failed", exc_info=True)
        self.path.unlink(missing_ok=True)


class VideoWriter:
    """Write ``(height, width, 3)`` uint8 RGB frames to an H.264 mp4, and optionally to chunk files;
    or, with ``alpha=True``, ``(height, width, 4)`` RGBA frames to a VP9 WebM with alpha.

    Use as a context manager; on an exception inside the ``with`` block (including a generator
    being closed, e.g. a cancelled Gradio job) every ffmpeg process is killed and the unfinished
    files are deleted. Call ``close()`` yourself (inside the block) to get the last chunk's path;
    ``__exit__`` closes too, but cannot return it.

    Example::

        with VideoWriter("out.mp4", fps=25, width=640, height=360, chunk_seconds=1.0) as w:
            for frame in frames:
                if (chunk := w.write(frame)) is not None:
                    yield chunk          # e.g. to gr.Video(streaming=True)
            if (chunk := w.close()) is not None:
                yield chunk

    Args:
        path: the full output file (``.mp4`` recommended; gets ``+faststart``).
        fps: frame rate (>= ``MIN_FPS``, 1e-5).
        width, height: size of the frames passed to ``write``. Odd sizes are padded by one column/row
            repeating the edge in the output, except with ``alpha`` (VP9 keeps them).
        crf: quality, 0 (best) to 51 (worst): x264's (23 is its default; 0 is lossless), or with ``alpha``
            VP9's (whose scale goes on to 63; 51 is far from its worst).
        alpha: take RGBA frames and write a VP9 WebM with an alpha channel (``path`` must end in
            ``.webm``; no chunks).
        chunk_seconds: if set, also write chunks of ``max(1, round(fps * chunk_seconds))`` frames,
            named ``<path stem>_00000<chunk_format>``, ``..._00001...``.
        chunk_dir: where chunks go (default: ``<path stem>_chunks`` beside ``path``); created.
        chunk_format: ``".ts"`` (MPEG-TS, default) or ``".mp4"``.
        audio: the sound to add to the full file when it is finished, cut to its duration (``add_audio``; not
            with ``alpha``); None: silent, as are the chunks.
        sample_aspect: (w, h): the frames' pixels are shown ``w / h`` times as wide as tall (the input's
            ``VideoInfo.sample_aspect``); the files (and chunks) are marked so (SAR), their pixels unchanged, so
            that players show an anamorphic input's output as they show the input.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float,
        width: int,
        height: int,
        crf: int = 23,
        alpha: bool = False,
        chunk_seconds: float | None = None,
        chunk_dir: str | Path | None = None,
        chunk_format: str = ".ts",
        audio: AudioSource | None = None,
        sample_aspect: tuple[int, int] = (1, 1),
    ) -> None:
        _check_args(fps, width, height, crf, chunk_seconds, chunk_format)
        if len(sample_aspect) != 2 or not all(is_integer(v) and v > 0 for v in sample_aspect):
            raise InputError(
                f"VideoWriter sample_aspect must be two positive integers (w, h), e.g. (1, 1) for square "
                f"pixels; got {sample_aspect!r}"
            )
        self.sample_aspect = (sample_aspect[0], sample_aspect[1])
        self.path = Path(path)
        if alpha and (chunk_seconds or audio is not None or self.path.suffix.lower() != ".webm"):
            raise InputError(
                f"VideoWriter(alpha=True) writes one .webm file without chunks; got {self.path.name} "
                f"with chunk_seconds={chunk_seconds!r}, audio={audio!r}. Name it .webm and leave chunk_seconds "
                "and audio None (the WebM has no sound)."
            )
        self.alpha, self.audio = alpha, audio
        if not self.path.parent.is_dir():
            raise MissingInputError(
                f"VideoWriter: the folder {self.path.parent} does not exist; create it first."
            )
        self.fps, self.width, self.height, self.crf = float(fps), int(width), int(height), int(crf)
        self.chunk_format = chunk_format
        self.frames_per_chunk = max(1, round(fps * chunk_seconds)) if chunk_seconds else None
        default_dir = self.path.with_name(f"{self.path.stem}_chunks")
        self.chunk_dir = Path(chunk_dir) if chunk_dir is not None else default_dir
        if self.frames_per_chunk:
            self.chunk_dir.mkdir(parents=True, exist_ok=True)
        self.chunk_paths: list[Path] = []
        self.num_frames = 0
        self._chunk: _Encoder | None = None
        self._closed = False
        self._full = self._encoder(self.path)

    def _encoder(self, path: Path) -> _Encoder:
        size = {"width": self.width, "height": self.height, "sample_aspect": self.sample_aspect}
        return _Encoder(path, fps=self.fps, crf=self.crf, alpha=self.alpha, **size)

    def write(self, frame: np.ndarray) -> Path | None:
        """Append one frame; return the path of the chunk this frame completed, else ``None``.

        Args:
            frame: ``(height, width, 3)`` uint8 RGB (``(height, width, 4)`` RGBA with ``alpha``).
        """
        if self._closed:
            raise ValueError(
                f"VideoWriter for {self.path} is closed; create a new one to write more frames."
            )
        expected = (self.height, self.width, 4 if self.alpha else 3)
        if not isinstance(frame, np.ndarray) or frame.shape != expected or frame.dtype != np.uint8:
            got = (
                f"{frame.dtype} {frame.shape}"
                if isinstance(frame, np.ndarray)
                else type(frame).__name__
            )
            raise ValueError(
                f"VideoWriter.write expects a uint8 {'RGBA' if self.alpha else 'RGB'} array of shape "
                f"{expected}; got {got}. "
                "Convert with np.asarray(img, dtype=np.uint8) and match the writer's size."
            )
        data = memoryview(np.ascontiguousarray(frame)).cast("B")
        try:
            self._full.write(data)
            self.num_frames += 1
            if self.frames_per_chunk is None:
                return None
            if self._chunk is None:
                name = f"{self.path.stem}_{len(self.chunk_paths):05d}{self.chunk_format}"
                self._chunk = self._encoder(self.chunk_dir / name)
            self._chunk.write(data)
            return self._finish_chunk() if self._chunk.num_frames == self.frames_per_chunk else None
        except BaseException:
            best_effort(f"writing {self.path.name}", self.abort)
            raise

    def _finish_chunk(self) -> Path:
        chunk, self._chunk = self._chunk, None
        chunk.close()
        self.chunk_paths.append(chunk.path)
        if chunk.path.suffix.lower() == ".ts":
            _pad_ts(chunk.path)
        return chunk.path

    def close(self) -> Path | None:
        """Finish the last (partial) chunk and the full file (and add ``audio`` to it); return that chunk's path or
        ``None``.

        Calling ``close`` again does nothing and returns ``None``.
        """
        if self._closed:
            return None
        try:
            last = self._finish_chunk() if self._chunk is not None else None
            self._full.close()
        except BaseException:
            best_effort(f"writing {self.path.name}", self.abort)
            raise
        self._closed = True
        if self.audio is not None and self.num_frames:
            self._add_audio(self.audio)
        return last

    def _add_audio(self, audio: AudioSource) -> None:
        """``add_audio`` to the finished file; if it fails, the file stays silent and a warning says why."""
        try:
            add_audio(self.path, audio, duration_s=self.num_frames / self.fps)
        except OSError as err:
            logger.warning("%s is left without sound: %s", self.path.name, err)

    def abort(self) -> None:
        """Kill this writer's ffmpeg processes and delete unfinished files (finished chunks stay).

        Does nothing once ``close`` has succeeded.
        """
        if self._closed:
            return
        for encoder in (self._chunk, self._full):
            if encoder is not None:
                encoder.abort()
        self._chunk = None
        self._closed = True

    def discard(self) -> None:
        """``abort``, then delete what this writer wrote, also once closed: the full file and its chunks (and their
        folder, if that leaves it empty). For a run that fails after its video was finished."""
        self.abort()
        self.path.unlink(missing_ok=True)
        for chunk in self.chunk_paths:
            chunk.unlink(missing_ok=True)
        if self.chunk_dir.is_dir() and not any(self.chunk_dir.iterdir()):
            self.chunk_dir.rmdir()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:
            best_effort(f"writing {self.path.name}", self.abort)


# an MPEG-TS null packet (PID 0x1fff: every demuxer skips it)
_TS_NULL_PACKET = bytes([0x47, 0x1F, 0xFF, 0x10]) + b"\xff" * 184
# below ~11 packets (2 KB: 2 frames of a tiny clip), ffprobe took a .ts for MPEG-PS ("detected only with low score")
# and failed ("End of file"): Gradio's streaming video probes each chunk so, and failed the run
_TS_MIN_PACKETS = 16


def _pad_ts(path: Path) -> None:
    """Append null packets to the MPEG-TS file ``path`` up to ``_TS_MIN_PACKETS``, so it is probed as MPEG-TS."""
    missing = _TS_MIN_PACKETS - path.stat().st_size // len(_TS_NULL_PACKET)
    if missing > 0:
        with path.open("ab") as file:
            file.write(_TS_NULL_PACKET * missing)


def _check_args(
    fps: float, width: int, height: int, crf: int, chunk_seconds: float | None, fmt: str
) -> None:
    if not math.isfinite(fps) or fps < MIN_FPS:
        raise InputError(
            f"VideoWriter fps must be a number >= {MIN_FPS:g} (a frame every {1 / MIN_FPS:,.0f} s; "
            f"an mp4 cannot time frames further apart); got {fps!r}. Read the input with a smaller "
            "stride, or write the frames at a faster rate."
        )
    for name, value in (("width", width), ("height", height)):
        if int(value) != value or value < 1:
            raise InputError(f"VideoWriter {name} must be a positive integer; got {value!r}")
    if not 0 <= crf <= 51:
        raise InputError(
            f"VideoWriter crf must be in 0..51 (x264 quality, 23 = default); got {crf!r}"
        )
    if chunk_seconds is not None and chunk_seconds <= 0:
        raise InputError(
            f"VideoWriter chunk_seconds must be > 0 or None (no chunks); got {chunk_seconds!r}"
        )
    if fmt not in CHUNK_FORMATS:
        raise InputError(f"VideoWriter chunk_format must be one of {CHUNK_FORMATS}; got {fmt!r}")
