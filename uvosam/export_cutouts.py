"""The cut-out files of an export: the objects without their background.

Per track, an image sequence in its own folder: RGBA cut-outs (``cutouts/<video>/<track_id>/<frame>.png``, straight
alpha) and black/white mattes (``mattes/<video>/<track_id>/<frame>.png``); with ``ExportOptions.full_sequences`` a
track's folder has a file for every frame of its span, its first to its last frame (a blank one where the track is
absent in between: transparent, black), so an editor imports it gap-free; nothing before its first or after its last
frame (the files keep the video's frame numbers: the first one says where the track starts). For the whole video,
``<video>_alpha.webm``: every exported track over a transparent background (alpha = the union of their masks), one
VP9 WebM with alpha.

A gap's blanks are written when the track comes back, so a frame costs work for the tracks in it (and the gaps they
close), never for every track seen so far: the files are the sum of the tracks' spans, not tracks x frames.

``ExportWriter`` (``uvosam.export``) feeds ``Cutouts`` each frame's results in order, after its track bookkeeping;
the PNGs are encoded and written on background threads (``submit``), the WebM by its own encoder process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from uvosam import atomic_files
from uvosam import export_formats as fmt
from uvosam.export_types import ExportOptions
from uvosam.types import FrameResult
from uvosam.video_writer import VideoWriter


class Cutouts:
    """One video's cut-outs, mattes and alpha WebM, as ``options`` ask (``cutouts``, ``mattes``, ``alpha_webm``).

    Args:
        cutouts_dir, mattes_dir: ``cutouts/<video>`` and ``mattes/<video>`` (a track's folder is created with its
            first file).
        alpha_path: ``<video>_alpha.webm`` (started with the first frame).
        height, width: the frame size.
        options: which files, and how (``full_sequences``, ``cutout_keep_frame_rgb``, ``png_compress_level``).
        fps: the frame rate of the WebM (> 0; only read with ``options.alpha_webm``). sample_aspect: its pixels'
            shape (``VideoWriter``'s).
        frame_name: file stem of frame i.
        submit: runs ``fn(*args, **kwargs)`` later on another thread (``BackgroundWrites.submit``).
    """

    def __init__(
        self,
        cutouts_dir: Path,
        mattes_dir: Path,
        alpha_path: Path,
        *,
        height: int,
        width: int,
        options: ExportOptions,
        fps: float | None,
        sample_aspect: tuple[int, int] = (1, 1),
        frame_name: Callable[[int], str],
        submit: Callable[..., None],
    ) -> None:
        self._dirs = {"cutouts": cutouts_dir, "mattes": mattes_dir}
        self.alpha_path = alpha_path
        self.height, self.width = height, width
        self.options, self.fps, self.sample_aspect = options, fps, sample_aspect
        self._frame_name, self._submit = frame_name, submit
        self._blank: dict[str, bytes] = {}  # encoded blank PNG by mode
        # track id -> its last frame with files (for the blanks of a gap, with full_sequences)
        self._last_written: dict[int, int] = {}
        self._alpha: VideoWriter | None = None  # started with the first frame

    @property
    def alpha_webm(self) -> Path | None:
        """The WebM's path once it was started (None: not asked for, or no frame yet)."""
        return self.alpha_path if self._alpha is not None else None

    def add(self, result: FrameResult) -> None:
        """Write frame ``result.frame_index``'s files (frames in order, each once).

        Args:
            result: the frame's exported tracks, masks (N, H, W) bool at the frame size.
        """
        if self.options.cutouts or self.options.mattes:
            self._write_track_images(result)
        if self.options.alpha_webm:
            self._write_alpha(result)

    def close(self) -> None:
        """Finish the WebM (its encoder writes the last frames); raises if the encoder failed."""
        if self._alpha is not None:
            self._alpha.close()

    def abort(self) -> None:
        """Stop the WebM's encoder and delete the unfinished file."""
        if self._alpha is not None:
            self._alpha.abort()
        self.alpha_path.unlink(missing_ok=True)

    def _track_file(self, kind: str, track_id: int, frame_index: int) -> Path:
        folder = self._dirs[kind] / str(track_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self._frame_name(frame_index)}.png"

    def _write_track_images(self, result: FrameResult) -> None:
        level = self.options.png_compress_level
        t = result.frame_index
        for track_id, mask in zip(result.track_ids.tolist(), result.masks):
            if self.options.full_sequences:
                last = self._last_written.get(track_id)
                if last is not None and last + 1 < t:  # back after a gap: its blanks, once
                    self._write_blanks(track_id, range(last + 1, t))
                self._last_written[track_id] = t
            if self.options.cutouts:
                self._submit(
                    fmt.write_cutout_png,
                    self._track_file("cutouts", track_id, t),
                    result.image,
                    mask,
                    keep_frame_rgb=self.options.cutout_keep_frame_rgb,
                    compress_level=level,
                )
            if self.options.mattes:
                path = self._track_file("mattes", track_id, t)
                self._submit(fmt.write_matte_png, path, mask, compress_level=level)

    def _write_alpha(self, result: FrameResult) -> None:
        if self._alpha is None:
            self._alpha = VideoWriter(
                self.alpha_path,
                fps=self.fps,
                width=self.width,
                height=self.height,
                alpha=True,
                sample_aspect=self.sample_aspect,
            )
        mask = result.masks.any(axis=0)  # (H, W); all False for a frame without tracks
        self._alpha.write(
            fmt.cutout_rgba(result.image, mask, keep_frame_rgb=self.options.cutout_keep_frame_rgb)
        )

    def _write_blanks(self, track_id: int, frames: range) -> None:
        for kind, mode, wanted in (
            ("cutouts", "RGBA", self.options.cutouts),
            ("mattes", "L", self.options.mattes),
        ):
            if not wanted:
                continue
            if mode not in self._blank:
                self._blank[mode] = fmt.blank_png_bytes(mode, self.height, self.width)
            for t in frames:
                self._submit(
                    atomic_files.write_bytes,
                    self._track_file(kind, track_id, t),
                    self._blank[mode],
                )
