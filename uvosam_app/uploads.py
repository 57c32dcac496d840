"""Uploaded zips of images, unpacked safely: a zip of frames as the app's input, a zip of ground-truth PNGs to
score against. Non-UI helpers of ``app.py`` (no gradio here).

Every upload is bounded before anything is written: the entry count is read from the zip's end record before
``zipfile`` parses its listing (``MAX_ZIP_ENTRIES``), the images of ONE folder are taken, their count and declared
sizes are capped, and so is their ratio to the zip's size (``MAX_UNPACK_RATIO``); members that ``zipfile``
cannot read (a password, Deflate64 compression) are refused by name (``check_unpackable``); files are written
under their base names only. Frames are refused from their headers when a side is over the app's limit.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from uvosam.errors import VideoLimitError
from uvosam.frame_folder import FRAME_EXTENSIONS, image_display_size, natural_key
from uvosam.portable_names import portable_name
from uvosam.text import count
from uvosam.video import DEFAULT_FPS, VideoInfo, check_limits, fit_info
from uvosam_app.settings import AppSettings
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
MAX_ZIP_ENTRIES = 100_000
"""Most entries an uploaded zip may list: ``zipfile`` parses them all when it opens one (a 200 MiB zip of empty
entries lists millions: seconds of CPU and gigabytes of memory per request)."""


def _zip_entry_count(zip_path: str | Path) -> int | None:
    """The entry count from a zip's end records (its last 64 KiB), without parsing the listing; None if not found."""
    with open(zip_path, "rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - (1 << 16) - 22))
        tail = file.read()
        end = tail.rfind(b"PK\x05\x06")
        if end < 0 or len(tail) < end + 22:
            return None
        count = struct.unpack_from("<H", tail, end + 10)[0]
        locator = end - 20
        if count == 0xFFFF and locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
            file.seek(struct.unpack_from("<Q", tail, locator + 8)[0])  # the zip64 end record
            record = file.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                count = struct.unpack_from("<Q", record, 32)[0]
        return count


def _open_zip(zip_path: str | Path, kind: str) -> zipfile.ZipFile:
    try:
        count = _zip_entry_count(zip_path)
    except OSError as err:
        raise ValueError(f"{Path(zip_path).name} could not be read ({err})") from None
    if count is not None and count > MAX_ZIP_ENTRIES:
        raise ValueError(
            f"{Path(zip_path).name} lists {count} entries; at most {MAX_ZIP_ENTRIES} are accepted here: zip the one "
            f"folder of {kind} files"
        )
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"{Path(zip_path).name} is not a readable zip file ({err}); upload a .zip of {kind} files"
        ) from None


def _image_members(
    archive: zipfile.ZipFile, name: str, suffixes: tuple[str, ...], prefix: str, expected: str = ""
) -> dict[PurePosixPath, zipfile.ZipInfo]:
    """The ``suffixes`` files under ``prefix`` (``\\`` read as ``/``; no ``__MACOSX`` copies, no hidden files: as
    ``uvosam.frame_folder.list_frames`` skips them), all in one folder.

    Raises:
        ValueError: none (saying what the zip holds, then ``expected``: what it should), or files in several
            folders.
    """
    kind = "/".join(suffixes)
    members = {
        PurePosixPath(m.filename.replace("\\", "/")): m for m in archive.infolist()
        if not m.is_dir() and m.filename.lower().endswith(suffixes)
    }  # fmt: skip
    members = {
        path: m for path, m in members.items()
        if str(path).startswith(prefix) and path.parts[0] != "__MACOSX" and not path.name.startswith(".")
    }  # fmt: skip
    folders = sorted({str(path.parent) for path in members})
    if not members:
        where = f" in its {prefix.rstrip('/')} folder" if prefix else ""
        raise ValueError(
            f"{name} holds no {kind} file{where}: it holds {_holdings(archive)}. {expected}".rstrip()
        )
    if len(folders) > 1:
        raise ValueError(
            f"{name} has {kind} files in {len(folders)} folders ({_listed(folders, 3)}); "
            "zip the one folder of this clip's frames"
        )
    return members


def _listed(names: list[str], most: int) -> str:
    """The first ``most`` of ``names`` joined, with ", ..." only when some are left out."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def _holdings(archive: zipfile.ZipFile) -> str:
    """What a zip holds, for a refusal: "12 .jpg files", "3 .jpg files and 1 .txt file", "no file"."""
    suffixes = Counter(
        PurePosixPath(m.filename).suffix.lower() or "extension-less"
        for m in archive.infolist()
        if not m.is_dir()
    )
    if not suffixes:
        return "no file"
    kinds = [count(n, f"{suffix} file") for suffix, n in suffixes.most_common(3)]
    more = ", ..." if len(suffixes) > 3 else ""
    return " and ".join([", ".join(kinds[:-1]), kinds[-1]] if len(kinds) > 1 else kinds) + more


def _check_bounds(
    zip_path: str | Path,
    members: Mapping[PurePosixPath, zipfile.ZipInfo],
    kind: str,
    max_files: int,
    max_bytes: int,
) -> None:
    """Raise ``ValueError`` when ``members`` are over ``max_files`` or ``max_bytes`` unpacked, or would unpack to
    more than ``MAX_UNPACK_RATIO`` times the zip's size."""
    name = Path(zip_path).name
    total = sum(m.file_size for m in members.values())
    if len(members) > max_files or total > max_bytes:
        raise ValueError(
            f"{name} holds {len(members)} {kind} files, {total / 2**20:.0f} MiB unpacked; at most "
            f"{max_files} files and {max_bytes / 2**20:.0f} MiB are accepted here"
        )
    packed = Path(zip_path).stat().st_size
    if total > MAX_UNPACK_RATIO * packed + (1 << 20):
        raise ValueError(
            f"{name} would unpack to {total / 2**20:.0f} MiB from {packed / 2**20:.1f} MiB, more than "
            f"{MAX_UNPACK_RATIO}x: not image files (PNG and JPEG hardly compress); zip the frames themselves"
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
    with _open_zip(zip_path, kind) as archive:
        members = _image_members(archive, name, FRAME_EXTENSIONS, "", FRAMES_EXPECTED)
        if max_files is not None and max_bytes is not None:
            _check_bounds(zip_path, members, kind, max_files, max_bytes)
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
            raise ValueError(
                f"{name} has {len(dup)} files for frame {unpacked[dup[0]].stem!r}: {both}; keep one "
                "file per frame"
            )
        sizes = {}
        for path in paths:
            sizes[path] = _frame_size(archive, members[path], f"{name}: {path}", max_side)
            if sizes[path] != sizes[paths[0]]:
                (w0, h0), (w, h) = sizes[paths[0]], sizes[path]
                raise ValueError(
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
        raise ValueError(f"{where} is damaged ({err}); zip the files again") from None
    # its message names the server's file object: "<zipfile.ZipExtFile ...>"
    except UnidentifiedImageError:
        raise ValueError(
            f"{where} is not a readable image (not a JPEG or PNG inside); replace or remove it"
        ) from None
    except (OSError, struct.error, SyntaxError) as err:  # PIL: SyntaxError = bad EXIF
        raise ValueError(f"{where} is not a readable image ({err}); replace or remove it") from None


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


_ENCRYPTED = 0x1
"""Bit 0 of a zip member's general purpose flags: the member has a password."""
_UNPACKABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
"""The compression methods Python's ``zipfile`` unpacks."""
_METHOD_NAMES = {9: "Deflate64", 93: "Zstandard", 95: "XZ", 98: "PPMd"}


def check_unpackable(name: str, members: Mapping[PurePosixPath, zipfile.ZipInfo]) -> None:
    """Raise ``ValueError`` naming the first of ``members`` (of the zip ``name``) that ``zipfile`` cannot read:
    one with a password, or one compressed with a method other than ``_UNPACKABLE`` (Deflate64, PPMd, ...: 7-Zip
    and some Windows tools write them)."""
    for path, member in members.items():
        if member.flag_bits & _ENCRYPTED:
            raise ValueError(
                f"{name}: {path} is password-protected (encrypted), which this app cannot open; save the zip "
                "without a password and upload it again"
            )
        if member.compress_type not in _UNPACKABLE:
            method = _METHOD_NAMES.get(
                member.compress_type, f"compression method {member.compress_type}"
            )
            raise ValueError(
                f"{name}: {path} is compressed with {method}, which this app cannot unpack; re-zip the files "
                "with standard Deflate compression (e.g. zip -r, or 7-Zip's Deflate method)"
            )


MAX_UNPACK_RATIO = 20
"""Most an uploaded zip of images may grow when unpacked: PNG and JPEG are compressed already (about 1x)."""


@dataclass(frozen=True)
class UnpackedImages:
    """The images ``extract_images`` took from a zip: ``folder``, where it wrote them; ``inside``, their folder in
    the zip (``.`` for its root), which names a file as the user knows it (``<inside>/<file name>``)."""

    folder: Path
    inside: PurePosixPath


def extract_images(
    zip_path: str | Path,
    parent: Path,
    *,
    suffixes: tuple[str, ...] = (".png",),
    prefix: str = "",
    max_files: int,
    max_bytes: int,
    expected: str = "",
) -> UnpackedImages:
    """The images (``suffixes``) of ONE folder of a zip (under ``prefix``), extracted flat; the zip is listed once.

    Safe for uploads: only those members are read, each is written under its base name made portable
    (``written_names``; no path from the zip is used; ``\\`` counts as a folder separator, as Windows tools write
    it), the count, the declared sizes and their ratio to the zip's size (``MAX_UNPACK_RATIO``) are checked before
    anything is written (``zipfile`` never reads past a member's declared size), and macOS ``__MACOSX`` copies are
    ignored.

    Returns:
        ``folder``: ``parent/<name>``, holding the files: ``name`` is the folder's name in the zip, or the zip's stem
        for files at its root (letters and digits of any script, ``-_.`` kept; the rest becomes ``_``; ``CON``
        becomes ``CON_``: ``uvosam.portable_names``); and the folder's path in the zip.

    Raises:
        ValueError: not a zip, no such file (then ``expected`` follows what it holds), files in several folders,
            two that would be one file on Windows or macOS (``A.png``, ``a.png``), over ``max_files`` or
            ``max_bytes``, a zip that unpacks to more than ``MAX_UNPACK_RATIO`` times its size, a member with a
            password or compressed with a method ``zipfile`` lacks (``check_unpackable``), a damaged member.
    """
    name, kind = Path(zip_path).name, "/".join(suffixes)
    with _open_zip(zip_path, kind) as archive:
        members = _image_members(archive, name, suffixes, prefix, expected)
        inside = next(iter(members)).parent  # they are in one folder
        _check_bounds(zip_path, members, kind, max_files, max_bytes)
        check_unpackable(name, members)
        written = written_names(name, members)
        folder = inside.name if inside != PurePosixPath(".") else Path(zip_path).stem
        dest = parent / (portable_name(re.sub(r"[^\w.-]", "_", folder).strip(".")) or "frames")
        dest.mkdir(parents=True, exist_ok=True)
        for path, member in members.items():
            try:
                with archive.open(member) as src, open(dest / written[path], "wb") as out:
                    shutil.copyfileobj(src, out)
            except (  # a bad CRC, cut or garbled data; odd flags in a member's own header
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                NotImplementedError,
            ) as err:
                raise ValueError(
                    f"{name}: {member.filename} is damaged ({err}); zip the files again"
                ) from None
    return UnpackedImages(dest, inside)
