"""An uploaded zip of frames as the app's input: what it would be as a frame folder (``zip_frames_info``: count,
names, size, from the frames' headers), and its frames unpacked into a run's folder, within the app's bounds
(``FramesZip``). Non-UI helpers of ``app.py`` (no gradio here).

The zip is read as ``zip_images`` reads any uploaded zip of images (bounded before anything is written, members
``zipfile`` cannot read refused by name, files written under their base names only). Frames are refused from their
headers when a side is over the app's limit.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from uvosam.errors import InputError, VideoLimitError
from uvosam.frame_folder import FRAME_EXTENSIONS, image_display_size, natural_key
from uvosam.video import DEFAULT_FPS, VideoInfo, check_limits, fit_info
from uvosam_app.settings import AppSettings
from uvosam_app.zip_images import (
    check_bounds,
    check_unpackable,
    extract_images,
    image_members,
    open_zip,
)
from uvosam_app.zip_names import as_written, written_names


@dataclass(frozen=True)
class FramesZip:
    """An uploaded zip of frames, unpacked by the run that uses it (into its own folder).

    ``info`` and ``extract`` apply the same bounds (10x the frame limit, twice the upload limit
    unpacked), so what the upload's description says is what Run does.
    """

    path: str

    def _bounds(self, settings: AppSettings) -> dict[str, int]:
        return {
            "max_files": 10 * settings.max_frames,
            "max_bytes": 2 * settings.max_upload_mb << 20,
        }

    def info(self, settings: AppSettings, *, stride: int, max_frames: int) -> VideoInfo:
        """``zip_frames_info`` within this app's bounds, checked against its video limits for a read with
        ``stride`` and ``max_frames``: what Run would see (frames over ``max_side`` scaled down), nothing unpacked.

        Raises:
            ValueError: see ``zip_frames_info``. VideoLimitError: over the app's limits.
        """
        limits = settings.limits()
        info = zip_frames_info(self.path, max_side=limits.max_side, **self._bounds(settings))
        check_limits(info, limits, stride=stride, max_frames=max_frames)
        return fit_info(info, settings.max_side)

    def extract(self, parent: Path, settings: AppSettings) -> Path:
        """The frames as a folder ``parent/<the zip's folder name>``, within this app's bounds."""
        bounds = self._bounds(settings)
        return extract_images(
            self.path, parent, suffixes=FRAME_EXTENSIONS, expected=FRAMES_EXPECTED, **bounds
        ).folder


FRAMES_EXPECTED = (
    f"A zip of frames holds the clip's {'/'.join(FRAME_EXTENSIONS)} images, in one folder."
)


def zip_frames_info(
    zip_path: str | Path,
    *,
    max_files: int | None = None,
    max_bytes: int | None = None,
    max_side: int | None = None,
) -> VideoInfo:
    """What a zip of frames would be as a frame folder (count, names, size as decoded), unpacking nothing but the
    frames' headers. Checked as a run checks the unpacked folder (its files named as ``extract_images`` names
    them): one file per frame name, all frames of one size
    (EXIF orientation applied); and, when given, ``extract_images``' bounds and ``max_side`` (each frame's, from
    its header).

    Raises:
        ValueError: not a zip, no frame, frames in several folders, over the bounds, a frame ``zipfile`` cannot
            unpack (a password, an unsupported compression method, damaged data), two files for one frame name, two
            that would be one file on Windows or macOS (``A.png``, ``a.png``), a frame that is not an image, frames
            of different sizes.
        VideoLimitError: a frame with a side over ``max_side``, or too many pixels for PIL to open.
    """
    name, kind = Path(zip_path).name, "/".join(FRAME_EXTENSIONS)
    with open_zip(zip_path, kind) as archive:
        members = image_members(archive, name, FRAME_EXTENSIONS, "", FRAMES_EXPECTED)
        if max_files is not None and max_bytes is not None:
            check_bounds(zip_path, members, kind, max_files, max_bytes)
        check_unpackable(name, members)
        unpacked = {
            path: PurePosixPath(file) for path, file in written_names(name, members).items()
        }
        # the order a run reads the unpacked folder in
        paths = sorted(members, key=lambda path: natural_key(unpacked[path]))
        by_stem: dict[str, list[PurePosixPath]] = {}
        for path in paths:
            by_stem.setdefault(unpacked[path].stem, []).append(path)
        dup = next((same for same in by_stem.values() if len(same) > 1), None)
        if dup is not None:
            both = ", ".join(as_written(p, unpacked[p].name) for p in dup)
            raise InputError(
                f"{name} has {len(dup)} files for frame {unpacked[dup[0]].stem!r}: {both}; keep one "
                "file per frame"
            )
        sizes = {}
        for path in paths:
            sizes[path] = _frame_size(archive, members[path], f"{name}: {path}", max_side)
            if sizes[path] != sizes[paths[0]]:
                (w0, h0), (w, h) = sizes[paths[0]], sizes[path]
                raise InputError(
                    f"{name}: frames differ in size: {paths[0]} is {w0}x{h0} but {path} is {w}x{h}. All frames "
                    "of a sequence must have the same size; resize them"
                )
    width, height = sizes[paths[0]]
    count = len(paths)
    names = tuple(unpacked[p].stem for p in paths)
    return VideoInfo(
        path=Path(zip_path),
        fps=DEFAULT_FPS,
        num_frames=count,
        width=width,
        height=height,
        rotation=0,
        duration_s=count / DEFAULT_FPS,
        is_folder=True,
        frame_names=names,
    )


def _frame_size(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, where: str, max_side: int | None
) -> tuple[int, int]:
    """(width, height) of a zipped frame as decoded (EXIF orientation applied), from its header. A frame with a
    side over ``max_side`` is refused before its EXIF is looked for (which can decode a PNG's pixels).

    Raises:
        VideoLimitError: a side over ``max_side``, or too many pixels for PIL to open. ValueError: damaged zip
            data, not an image.
    """
    try:
        with archive.open(member) as file, Image.open(file) as image:
            _check_frame_side(where, image.size, max_side)
            return image_display_size(image, file)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _too_many_pixels(where, err, max_side) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise InputError(f"{where} is damaged ({err}); zip the files again") from None
    # its message names the server's file object: "<zipfile.ZipExtFile ...>"
    except UnidentifiedImageError:
        raise InputError(
            f"{where} is not a readable image (not a JPEG or PNG inside); replace or remove it"
        ) from None
    except (OSError, struct.error, SyntaxError) as err:  # PIL: SyntaxError = bad EXIF
        raise InputError(f"{where} is not a readable image ({err}); replace or remove it") from None


def _check_frame_side(where: str, size: tuple[int, int], max_side: int | None) -> None:
    width, height = size
    if max_side is not None and max(width, height) > max_side:
        subject = f"{where} is {width}x{height}: its longest side {max(width, height)} px"
        raise VideoLimitError(
            f"{subject}, over the limit of {max_side}. Resize the frames to at most {max_side} px a side and zip "
            "them again",
            limit_name="max_side",
            subject=subject,
            limit=max_side,
        )


def _too_many_pixels(where: str, err: Warning | Exception, max_side: int | None) -> VideoLimitError:
    """The refusal of a frame PIL will not open (``DecompressionBombError``; its warning, when warnings are
    errors), whose size PIL does not tell."""
    limit = Image.MAX_IMAGE_PIXELS * (2 if isinstance(err, Image.DecompressionBombError) else 1)
    fix = f"resize the frames to at most {max_side} px a side" if max_side else "resize the frames"
    return VideoLimitError(
        f"{where} has over {limit} pixels, too many to open: {fix} and zip them again"
    )
