"""A file loaded from a link (Load): how it is downloaded (``download``, with Load's limits, which a file input that an
API client gives as a link shares: ``uvosam_app.file_links``) and where it goes, the player or the "linked video"
state. Non-UI helpers of ``uvosam_app.handlers`` (no gradio here).

The input player (``gr.Video``) converts, when it shows a file, whatever browsers cannot play: Gradio 6.31's
``_format_video`` remuxes an H.264/AV1 stream (with AAC/MP3 audio or none) into an mp4 (lossless, fast), and
re-encodes anything else with libx264 (lossy; minutes for a long HD clip, while Load shows no progress). Run then
reads that copy, so the same clip by link and by upload (which is not converted) would give different masks. A file
that needs that re-encode (``needs_reencode``) is therefore not shown in the player: the session keeps its path
(the "linked video" state) and Run reads the file as downloaded; the description says so and the first frame
stands in for the preview (``first_frame``). An upload is shown as it is, unconverted: one that browsers cannot play
(``browser_plays``) gets the same help (``unplayable_note``, its first frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uvosam.remote_files import is_zip_download
from uvosam.remote_video import download_video
from uvosam.video import VideoInfo, iter_probed
from uvosam_app.probes import ProbeCache
from uvosam_app.settings import AppSettings
from uvosam_app.text import markdown_text
from uvosam_app.uploads import FramesZip

PLAYABLE = frozenset(
    {
        (".mp4", "h264"),
        (".mp4", "av1"),
        (".webm", "vp8"),
        (".webm", "vp9"),
        (".webm", "av1"),
        (".ogg", "theora"),
    }
)
"""(extension, video codec) pairs that Gradio's player shows as they are (``processing_utils.video_is_playable``)."""
REMUXED = frozenset({"h264", "av1"})
REMUXED_AUDIO = frozenset({"", "aac", "mp3"})
"""Video and audio codecs that Gradio copies into an mp4 without re-encoding (``_can_remux_to_mp4``; "": none)."""
BROWSER_CODECS = frozenset({"h264", "av1", "vp8", "vp9"})
BROWSER_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm"})
"""What a browser's player shows as it is, from any of these containers (Chromium 2026-11, measured: H.264 and VP9
played from .mp4, .mov, .mkv and .webm; nothing from an .avi; HEVC, MPEG-4 Part 2 and Motion JPEG from none)."""
CODEC_NAMES = {"hevc": "HEVC", "h264": "H.264", "mpeg4": "MPEG-4 Part 2", "prores": "ProRes",
               "mjpeg": "Motion JPEG", "gif": "GIF", "webp_anim": "WebP", "webp": "WebP", "apng": "APNG",
               "vp9": "VP9", "vp8": "VP8", "av1": "AV1"}  # fmt: skip


@dataclass(frozen=True)
class Loaded:
    """Where a download goes: the player (``video``), the zip input (``frames_zip``) or the linked-video state
    (``linked``); at most one is set."""

    video: str | None = None
    frames_zip: str | None = None
    linked: str | None = None


def download(
    url: str,
    folder: Path,
    settings: AppSettings,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` into ``folder`` with Load's limits: at most ``max_upload_mb``, within ``url_timeout_s``,
    public addresses only unless ``url_allow_private`` (``uvosam.remote_video.download_video``, whose
    ``RemoteVideoError`` it raises, leaving no file); ``progress(done, total)`` as the bytes come."""
    return download_video(
        url,
        folder,
        max_bytes=settings.max_upload_mb << 20,
        timeout_s=settings.url_timeout_s,
        allow_private=settings.url_allow_private,
        progress=progress,
    )


def needs_reencode(info: VideoInfo) -> bool:
    """Whether Gradio's player would re-encode the video file ``info`` describes (not just show or remux it): by
    its extension and its codecs. A GIF is re-encoded too (to a libx264 mp4: colours and frame timing
    change), so it takes the linked route as well."""
    if (info.path.suffix.lower(), info.codec) in PLAYABLE:
        return False
    return not (info.codec in REMUXED and info.audio_codec in REMUXED_AUDIO)


def check_download(path: Path, settings: AppSettings, probes: ProbeCache) -> Loaded:
    """A downloaded file after the checks of Run that no setting changes (readable, frame size; ``max_frames=1``:
    the frame and duration limits depend on Frame stride and Max frames), placed by ``needs_reencode``; a video's
    probe is kept in ``probes`` (its description and first frame come next).

    Raises:
        ValueError, VideoReadError, VideoLimitError: as Run would refuse the file.
    """
    if is_zip_download(path):
        FramesZip(str(path)).info(settings, stride=1, max_frames=1)
        return Loaded(frames_zip=str(path))
    if needs_reencode(probes.info(path, limits=settings.limits(), max_frames=1)):
        return Loaded(linked=str(path))
    return Loaded(video=str(path))


def linked_note(info: VideoInfo) -> str:
    """Markdown: what the file of a linked Load is (its name and codec, from ``probe``), and that it has no
    preview."""
    codec = CODEC_NAMES.get(info.codec, info.codec)
    return (
        f"**{markdown_text(info.path.name)}** ({codec}) loaded from the link: browsers cannot play this codec, so "
        "there is no preview (its first frame is under *Latest frame*); Run uses the file as downloaded."
    )


def browser_plays(info: VideoInfo) -> bool:
    """Whether browsers' players show the video file ``info`` describes as it is (an upload: Gradio shows it
    unconverted): by its video codec and its extension (``BROWSER_CODECS``, ``BROWSER_CONTAINERS``)."""
    return info.codec in BROWSER_CODECS and info.path.suffix.lower() in BROWSER_CONTAINERS


def boxed_note(info: VideoInfo, name: str) -> str:
    """Markdown: that the video file ``name`` (``info``: its probe) given in the box of a zip of frames (an animated
    GIF: ``checks.FRAMES_BOX_VIDEOS``) is taken as the video, and what stands in for its preview."""
    codec = CODEC_NAMES.get(info.codec, info.codec)
    return (
        f"**{markdown_text(name)}** ({codec}) is taken as the video. The player has no preview of it: its first "
        "frame is under *Latest frame*, below Run. Run reads it as uploaded."
    )


def unplayable_note(info: VideoInfo, name: str) -> str:
    """Markdown: that most browsers cannot play the upload ``name`` (``info``: its probe) and what stands in for
    its preview."""
    codec = CODEC_NAMES.get(info.codec, info.codec)
    return (
        f"**{markdown_text(name)}** ({codec} in {info.path.suffix.lower() or 'a file without extension'}): most "
        'browsers cannot play this file ("Video not playable"), so the player shows no picture: its first frame is '
        "under *Latest frame*. Run reads it as uploaded."
    )


LINKS_OFF = "This app takes no links (UVOSAM_URL_INPUT=0): download the file and upload it."
GONE = (
    "The file loaded from the link is no longer kept on the server (the session's files expire): press Load "
    "again, or upload the file."
)


def unplayable_first_frame(info: VideoInfo) -> np.ndarray | None:
    """The first frame of the video file ``info`` describes if browsers cannot play it (``browser_plays``: an upload
    they show no picture of), as ``first_frame``; else None."""
    return None if browser_plays(info) else first_frame(info)


def first_frame(info: VideoInfo) -> np.ndarray:
    """The first frame of the video ``info`` describes (``probe``'s), (H, W, 3) RGB uint8 in display orientation;
    only that frame is decoded."""
    return next(iter_probed(info, max_frames=1))
