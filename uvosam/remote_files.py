"""Downloaded files on disk: a plain, safe name (from a Content-Disposition or the link's path, the extension
from the content type when it has no known one), placed without overwriting anything, and whether one is a zip of
frames. The download itself is ``uvosam.remote_video.download_video``.
"""

from __future__ import annotations

import os
import re
import unicodedata
import zipfile
from pathlib import Path

from uvosam.portable_names import portable_characters, portable_name

__all__ = ["MEDIA_SUFFIXES", "MEDIA_TYPES", "is_zip_download", "place_file", "safe_file_name"]

MEDIA_TYPES = {
    "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
    "video/matroska": ".mkv", "video/x-msvideo": ".avi", "video/avi": ".avi", "video/mpeg": ".mpg",
    "video/ogg": ".ogv", "video/3gpp": ".3gp", "video/mp2t": ".ts", "video/x-m4v": ".m4v", "image/gif": ".gif",
    "image/apng": ".apng", "application/zip": ".zip", "application/x-zip-compressed": ".zip",
}  # fmt: skip
"""Content type -> the extension a downloaded file gets when its name has no known one."""
MEDIA_SUFFIXES = frozenset(MEDIA_TYPES.values()) | {
    ".mpeg",
    ".ogg",
    ".mts",
    ".m2ts",
    ".wmv",
    ".flv",
    ".png",
}
"""Known extensions: a name with one gets none added from the content type, and (.zip aside) is not sniffed as a zip."""


def safe_file_name(name: str, content_type: str = "", *, max_chars: int = 120) -> str:
    """``name`` (from a Content-Disposition or a URL path) as a plain file name: its last path component, no
    control or reserved characters, no leading dots, no device name of Windows (``portable_name``: ``con.mp4``
    becomes ``con_.mp4``), at most ``max_chars`` before the extension (any script kept); an extension from
    ``content_type`` (``MEDIA_TYPES``) is added when the name has no known one, and without one known the name
    ends in none (``x.html`` becomes ``x_html``: a server that shows the file by its type would show a page, its
    script run in the server's origin). ``"video"`` if nothing is left."""
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", name)[-1])
    name = portable_characters(name)
    name = name.strip().lstrip(".").rstrip(". ")
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in MEDIA_SUFFIXES:
        stem, suffix = name, MEDIA_TYPES.get(content_type, "")
        if not suffix:
            stem = stem.replace(".", "_")
    stem = portable_name(stem)[:max_chars].rstrip(". ") or "video"
    return stem + suffix[:16]


def is_zip_download(path: Path) -> bool:
    """True for a downloaded zip (of frames): named .zip, or a zip by content under a name that is not a video's
    (an mp4 may hold the bytes of a zip's end record by chance)."""
    suffix = path.suffix.lower()
    return suffix == ".zip" or (suffix not in MEDIA_SUFFIXES and zipfile.is_zipfile(path))


def place_file(part: Path, dest: Path, name: str) -> Path:
    """Move the finished ``part`` to ``dest/name`` (``name-1`` ... when taken; nothing is overwritten)."""
    stem, suffix = os.path.splitext(name)
    for i in range(1000):
        final = dest / (name if i == 0 else f"{stem}-{i}{suffix}")
        try:
            open(final, "xb").close()  # reserves the name atomically
        except FileExistsError:
            continue
        try:
            os.replace(part, final)
        except OSError:
            final.unlink(missing_ok=True)
            raise
        return final
    raise FileExistsError(f"{dest} already holds {name} and 999 numbered copies of it")
