"""The source's sound in an output mp4: ``AudioSource`` names it, ``add_audio`` muxes it into a finished video.

``VideoWriter`` (``uvosam.video_writer``) encodes its frames into a silent mp4 as they come, then, once that file is
finished, ``add_audio`` runs one more ffmpeg (``uvosam.video_probe.run_ffmpeg``): the video stream copied, the
source's FIRST audio stream (``-map 1:a:0``) copied or encoded, ``+faststart``, written beside the video as
``<name>.tmp`` and renamed over it (``uvosam.atomic_files``). If that fails, the silent video stays as it was.

Why a pass at the end, not the source as a second input of the encoding ffmpeg: there the audio's failures are the
video's. ffmpeg opens the audio encoder only when the first audio arrives, and if it cannot (AAC has no layout for,
e.g., the 10 channels of a 5.1.4 PCM track) the process ends with an error, taking the frames already piped into it;
a source that cannot be opened (a re-render's, moved meanwhile) stops it before the first frame. The frames are not
kept anywhere to encode again, so a silent video could not be made after all. The pass copies the video (no
re-encoding: it reads and writes the file once, as ``+faststart`` already does) and costs nothing per frame.

Codec: ``aac`` and ``mp3`` are copied (mp4 carries them and every browser plays them: the same two that Gradio copies
into an mp4, ``uvosam_app.links``); any other (opus, vorbis, flac, alac, ac3, pcm...: some mp4 carries but not every
browser plays) is encoded with ffmpeg's own AAC encoder, at its default bit rate, channels and rate kept. A channel
layout the encoder refuses (any of more than 8 channels: 5.1.4, 7.1.4, 22.2...; a few of 8 or fewer: 5.1.2, cube) is
downmixed to stereo (``-ac 2``): when that encoding fails, the pass is run again with the downmix (the encoder refuses
as it opens, before any sound is encoded, so the first try costs a moment). Only if that fails too (a source damaged
or gone since it was probed, a full disk) is the video left silent, with the first try's error.

Sync: the video's frames follow one another at its constant frame rate from its start, so the audio is cut to the
video: it starts where the source's first frame is shown (``AudioSource.start_s``: input ``-ss``, to the audio packet
when copied, exactly when encoded) and lasts at most the video's duration (input ``-t``: a video that ``max_frames``
cut short ends with its sound). Audio that starts after the first frame keeps its delay. A variable-frame-rate source
drifts as its frames' times do from the constant rate (the output has the same frames at evenly spaced times). An
MPEG-TS source, whose streams ffmpeg starts each at its own first packet, is aligned at those first packets.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from uvosam.atomic_files import replacing
from uvosam.video_probe import run_ffmpeg

__all__ = ["COPIED_CODECS", "AudioSource", "add_audio"]

logger = logging.getLogger(__name__)

COPIED_CODECS = frozenset({"aac", "mp3"})
"""Audio codecs (as ffmpeg names them) copied into the mp4 as they are; the others are encoded to AAC."""
# plus the video's duration: a pass reads and writes the file once and encodes the audio
_TIMEOUT_S = 120.0
_MIN_START_S = 0.0005  # a first frame's time below this is the file's start


@dataclass(frozen=True)
class AudioSource:
    """Where an output video's sound comes from.

    Attributes:
        path: the source video file (its first audio stream is used).
        codec: that stream's codec as ffmpeg names it (``VideoInfo.audio_codec``): copied if in ``COPIED_CODECS``,
            else encoded to AAC.
        start_s: when the source's first frame is shown (``VideoInfo.start_s``); the audio before it is left out.
    """

    path: Path
    codec: str
    start_s: float = 0.0


def add_audio(video: Path, source: AudioSource, *, duration_s: float) -> None:
    """Mux ``source``'s first audio stream into the finished mp4 ``video``, in place (see the module docstring).

    Args:
        video: a finished mp4 with one video stream, replaced by the same video with the sound.
        source: the sound.
        duration_s: the video's duration (frames / fps): the most audio taken.

    Raises:
        OSError: ffmpeg failed (also with the stereo downmix, when encoding) or took too long (the message gives
            ffmpeg's last words); ``video`` is then left as it was.
    """
    encode = source.codec not in COPIED_CODECS
    with replacing(video) as tmp:
        code, said = _mux(video, source, tmp, duration_s, ["-c:a", "aac" if encode else "copy"])
        if code != 0 and encode:
            downmix_code, _ = _mux(video, source, tmp, duration_s, ["-c:a", "aac", "-ac", "2"])
            if downmix_code == 0:
                logger.info(
                    "the sound of %s (%s) is downmixed to stereo: the AAC encoder did not take its channels "
                    "as they are (%s)", source.path.name, source.codec, _first_line(said),
                )  # fmt: skip
                return
        if code != 0:
            logger.debug("ffmpeg adding the sound of %s said: %s", source.path, said.strip())
            raise OSError(
                f"ffmpeg could not add the sound of {source.path.name} ({source.codec}) to {video.name} "
                f"(exit code {code}): {_first_line(said)}"
            )


def _mux(
    video: Path, source: AudioSource, tmp: Path, duration_s: float, audio_args: list[str]
) -> tuple[int, str]:
    """One pass of ffmpeg: ``video``'s stream copied and ``source``'s sound (``audio_args``: its codec options) cut
    to ``duration_s`` into ``tmp``; return (exit code, what ffmpeg said).

    Raises:
        OSError: it took too long (it was killed).
    """
    cut = ["-ss", f"{source.start_s:.6f}"] if source.start_s >= _MIN_START_S else []
    args = [
        "-loglevel", "error", "-y",
        # absolute paths: never read as an option ("-x.mp4") or a protocol ("a:b.mp4")
        "-i", str(video.absolute()),
        *cut, "-t", f"{duration_s:.6f}", "-i", str(source.path.absolute()),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *audio_args,
        "-movflags", "+faststart", "-f", "mp4", str(tmp.absolute()),
    ]  # fmt: skip
    try:
        return run_ffmpeg(args, _TIMEOUT_S + duration_s)
    except subprocess.TimeoutExpired as err:
        raise OSError(
            f"adding the sound of {source.path.name} to {video.name} took over {err.timeout:.0f} s"
        ) from err


def _first_line(said: str) -> str:
    """The first line of what ffmpeg said, or 'nothing said'."""
    said = said.strip()
    return said.splitlines()[0] if said else "nothing said"
