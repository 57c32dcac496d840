"""SHA-256 checksums of weight files, remembered so that a multi-GB file is hashed once, and checking a file
against its ``WeightSpec`` (``uvosam.weight_table``).

The SHA-256 of a file is computed once and remembered, in process (keyed by real path and the
file's stamp) and in a sidecar ``<file>.sha256`` written next to the file (for a Hub download:
next to the snapshot entry inside the HF cache), a small JSON ``{"sha256": ..., "size": ...,
"mtime_ns": ..., "ino": ..., "ctime_ns": ...}``. The stamp is the size, mtime, inode number and
ctime: size and mtime alone miss a file replaced by other bytes of the same size with its mtime
restored (``cp -p``, ``rsync -t``, ``wget -N``, ``curl -R``), but such a copy gets a new inode or
a new ctime, which no user call can set back (a kernel with coarse timestamps moves ctime once a
clock tick: a copy in place within the same few ms as the hashing would keep it). The sidecar is
trusted only while the whole stamp still matches, so a restart does not re-hash 2.5 GB; a sidecar
that lacks part of it (written before the inode and ctime were kept) is stale: the file is hashed
once more and the sidecar rewritten. Anything that changes the ctime (``chmod``, a new hard link)
costs one re-hash. The sidecar is written whole under a name of its own and renamed into place (a reader never sees
half of one); if the directory is read-only it is skipped. A size mismatch is reported before any hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path

from uvosam.errors import WeightsError
from uvosam.weight_table import WeightSpec

logger = logging.getLogger(__name__)

CHUNK_BYTES = 16 << 20
"""Bytes read (or downloaded) at a time while hashing."""

# (real path, size, mtime_ns, ino, ctime_ns) -> sha256 hex, filled by file_sha256.
_HASHES: dict[tuple[str, int, int, int, int], str] = {}
# (real path, sha256 hex) of each file without a published checksum whose hash was logged (check_copy)
_UNPINNED_LOGGED: set[tuple[str, str]] = set()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex of a file, remembered in process and in ``<file>.sha256`` (module docstring)."""
    path = Path(path)
    st = path.stat()
    key = (os.path.realpath(path), *_stamp(st).values())
    if key in _HASHES:
        return _HASHES[key]
    digest = _read_sidecar(path, st)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                h.update(chunk)
        digest = h.hexdigest()
        remember_sha256(path, digest)
    _HASHES[key] = digest
    return digest


def sidecar_path(path: Path) -> Path:
    """Where ``path``'s checksum is remembered: ``<file>.sha256`` next to it."""
    return path.with_name(path.name + ".sha256")


def _stamp(st: os.stat_result) -> dict[str, int]:
    """What must not change for a remembered hash to hold (module docstring)."""
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
        "ctime_ns": st.st_ctime_ns,
    }


def _read_sidecar(path: Path, st: os.stat_result) -> str | None:
    """The sidecar's hash if its stamp is ``st``'s, else None (none, unreadable, stale or old)."""
    try:
        data = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in _stamp(st).items()):
        return None
    digest = data.get("sha256")
    return digest if isinstance(digest, str) and len(digest) == 64 else None


def remember_sha256(path: Path, digest: str) -> None:
    """Record a hash in process and in the sidecar (skipped, with a debug log, if not writable)."""
    stamp = _stamp(path.stat())
    _HASHES[(os.path.realpath(path), *stamp.values())] = digest
    record = {"sha256": digest, **stamp}
    sidecar = sidecar_path(path)
    # written whole under a name of this call's own, then renamed: a reader (another process checking the same file)
    # never sees half of it, and two writers do not write into one file
    tmp = sidecar.with_name(f".{sidecar.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        os.replace(tmp, sidecar)
    except OSError as err:
        # (on a read-only file system even the unlink of a file never made raises: EROFS, not ENOENT)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        logger.debug("could not write checksum sidecar for %s: %s", path, err)


def verify_file(path: str | os.PathLike, spec: WeightSpec) -> None:
    """Raise ``WeightsError`` unless ``path`` has ``spec``'s size and SHA-256 (size first)."""
    path = Path(path)
    size = path.stat().st_size
    hint = spec.redownload_hint
    if spec.size_bytes is not None and size != spec.size_bytes:
        check_copy(path, spec, size, None, hint=hint)
    check_copy(path, spec, size, file_sha256(path), hint=hint)


def check_copy(path: Path, spec: WeightSpec, size: int, digest: str | None, *, hint: str) -> None:
    """Raise ``WeightsError`` (ending with ``hint``: what to do) unless ``size`` and ``digest`` (``None``: not
    hashed yet) are ``spec``'s. A spec without a published SHA-256 accepts any digest (size permitting) and logs it
    once for each file (a file checked again, as the app checks its weights before loading them, is not logged
    again; another file at that path is)."""
    if spec.sha256 is None and digest is not None and spec.size_bytes in (None, size):
        logged = (os.path.realpath(path), digest)
        if logged not in _UNPINNED_LOGGED:
            _UNPINNED_LOGGED.add(logged)
            logger.info(
                "%s (%s): sha256 %s (no published checksum to compare with)",
                path,
                spec.name,
                digest,
            )
        return
    if size == spec.size_bytes and digest == spec.sha256:
        return
    got = f"{size:,} bytes" + (f", sha256 {digest}" if digest is not None else "")
    raise WeightsError(
        f"{path} is not a good copy of {spec.basename} ({spec.name}): expected "
        f"{spec.size_text}, sha256 {spec.sha256 or '(not published)'}; got {got}. The file is truncated, "
        f"corrupt or a different file. {hint}"
    )
