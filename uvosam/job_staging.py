"""Where a job writes, so that a run into a folder holding an earlier result replaces it whole or not at all.

A job (``uvosam.job``'s run or re-render) whose ``work_dir`` holds an earlier result writes into a hidden staging
folder there, ``.uvosam-run-<pid>-<token>/``; only once it has finished (video, exports, zip, mask cache) does
``Staging.promote`` replace the earlier result's files with the new set, by renames on the same file system (the
earlier set is moved aside, the new one moved in, then the earlier one deleted). A run that fails or is stopped
(Ctrl-C, a closed generator) deletes its staging folder (``Staging.close``): the earlier result stays exactly as
it was, its mask cache too. A staging folder left by a killed run (SIGKILL, a power cut) is deleted by the next
job in that folder (``sweep_leftovers``; each live one holds an ``flock`` on its ``.lock`` file, which the sweep
tests, from before the folder has the name the sweep looks for). Every job, staged or not, holds ``work_dir``'s
lock from its start to its end (``job_locks.FolderLock``): a second job into the same folder is refused at once.
The renames of ``Staging.promote``, and those that put the earlier result back if they fail, are not cut in half by
a stop that honours ``job_locks.uninterrupted`` (the CLI's); an earlier result's file that cannot be put back is
kept in the staging folder's ``.replaced`` (logged), which nothing deletes.

A result's files are those ``result_entries`` names: ``<video>_uvosam.zip``, ``<video>_<style>.mp4`` of any style
(with its chunks), ``cache/``, and in ``export/`` the per-video folders (``davis/<video>`` ...), the alpha WebM and
the files at its root (README.txt, run.json, the tables, the timeline). A job replaces those of its own video name
(an earlier run of the same name, whatever its source) and, whichever run wrote them, the export's root files and
the cache, which describe the folder's last run (``earlier_result``): nothing else in the folder (a user's files,
another video's videos, zip and per-video exports) is touched, so one ``--out`` can collect several videos. A
folder without an earlier result (a fresh one, as the app's runs get) is written directly, as before: the streamed
chunks are where they are yielded, and a failed run deletes what it wrote (``job_outputs.discard_outputs``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from uvosam.errors import InputError
from uvosam.export import PER_VIDEO_FOLDERS, alpha_webm_name
from uvosam.export_root_files import ROOT_FILES
from uvosam.job_locks import FolderLock, check_free, is_held, lock_file, uninterrupted
from uvosam.portable_names import is_safe_name
from uvosam.provenance import RUN_JSON
from uvosam.render import STYLES

logger = logging.getLogger(__name__)

CACHE_FOLDER = "cache"  # the mask cache of a run_job: <work_dir>/cache
EXPORT_FOLDER = "export"
STAGING_PREFIX = ".uvosam-run-"
_LOCK = ".lock"
# inside the staging folder: the earlier result's files while the new ones move in
_ASIDE = ".replaced"
# a staging folder while it is made, before its lock is held: the sweep's glob does not match it
_NEW_PREFIX = ".uvosam-new-"
_NEW_GRACE_S = 600.0  # one older than this is a killed run's

T = TypeVar("T")


def result_entries(video_name: str) -> list[str]:
    """Every file or folder (relative to a job's ``work_dir``, ``/``-separated) that a job's result for
    ``video_name`` may hold; folders go whole."""
    names = [f"{video_name}_uvosam.zip"]
    for style in STYLES:
        names += [f"{video_name}_{style}.mp4", f"{video_name}_{style}_chunks"]
    names += [f"{EXPORT_FOLDER}/{name}" for name in ROOT_FILES]
    names.append(f"{EXPORT_FOLDER}/{alpha_webm_name(video_name)}")
    names += [f"{EXPORT_FOLDER}/{kind}/{video_name}" for kind in PER_VIDEO_FOLDERS]
    names.append(CACHE_FOLDER)
    return names


def rerender_keeps(cache_root: Path, work_dir: Path) -> tuple[str, ...]:
    """What of an earlier result in ``work_dir`` a re-render reading the mask cache at ``cache_root`` leaves in place
    (``Staging``'s ``keep``): that cache, when it is ``work_dir``'s own (a re-render into its run's folder). Another
    cache there goes with the result it replaces, as it no longer matches the folder's outputs."""
    return (CACHE_FOLDER,) if cache_root.resolve() == (work_dir / CACHE_FOLDER).resolve() else ()


@dataclass(frozen=True)
class EarlierResult:
    """What a folder holds that a job would replace (``earlier_result``), and the run that wrote its export."""

    video_name: str | None  # the folder's last run, from its run.json (None: none, or unreadable)
    # the input file's (or folder's) name that run was made from, from its run.json
    source: str | None
    entries: tuple[str, ...]  # the files and folders there the job replaces (``result_entries``)


def earlier_result(work_dir: Path, video_name: str) -> EarlierResult | None:
    """What ``work_dir`` holds that a job named ``video_name`` replaces: the files and folders named as its own
    (``result_entries``: those of an earlier run of the same name, whatever its source), the files at the export's
    root and the mask cache (whichever run wrote them: they describe the folder's last run); None when it holds
    none of them. Another video's videos, zip and per-video exports stay."""
    entries = tuple(e for e in result_entries(video_name) if _exists(work_dir / e))
    if not entries:
        return None
    video = _recorded_video(work_dir / EXPORT_FOLDER / RUN_JSON)
    name, source = video.get("name"), video.get("source")
    return EarlierResult(
        name if _a_job_name(name) else None,
        source if isinstance(source, str) else None,
        entries,
    )


def _a_job_name(name: Any) -> bool:
    """Whether ``name`` can name a job's files (``is_safe_name``: ``safe_name`` makes it, or made it in an earlier
    release: ``con``): never a path out of the folder, whatever a run.json says."""
    return is_safe_name(name)


def _recorded_video(path: Path) -> dict[str, Any]:
    """The ``video`` entry of a run.json (empty when there is none or it cannot be read)."""
    try:
        video = json.loads(path.read_text(encoding="utf-8")).get("video")
    except (OSError, ValueError, AttributeError):
        return {}
    return video if isinstance(video, dict) else {}


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def check_replaceable(
    work_dir: Path,
    video_name: str,
    *,
    source: Path | None,
    option: str,
    keep: tuple[str, ...] = (),
) -> EarlierResult | None:
    """Raise ``ValueError`` if another job is writing to ``work_dir`` now (``job_locks.FolderLock``), if the job
    cannot replace the earlier result ``work_dir`` holds (no permission to delete one of its files: a folder of
    another user's), or if it would overwrite or delete ``source`` (the input, a file or frame folder, is one of the
    result's paths or inside one). ``option`` names ``work_dir`` in the message (``"--out"``); ``keep``: entries
    the job leaves in place (``Staging``). Returns the earlier result (None: none)."""
    check_free(work_dir)
    return _replaceable(work_dir, video_name, source=source, option=option, keep=keep)


def _replaceable(
    work_dir: Path,
    video_name: str,
    *,
    source: Path | None,
    option: str,
    keep: tuple[str, ...],
) -> EarlierResult | None:
    if source is not None:
        _check_spares_input(work_dir, video_name, Path(source), option)
    earlier = earlier_result(work_dir, video_name)
    for entry in (e for e in (earlier.entries if earlier else ()) if e not in keep):
        for folder in _folders_to_write(work_dir, entry):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise InputError(
                    f"{option} {work_dir} holds an earlier result that this run would replace, but there is no "
                    f"permission to delete files in {folder} (another user's?); pass another {option}, or remove "
                    "that result first"
                )
    return earlier


def _folders_to_write(work_dir: Path, entry: str) -> list[Path]:
    """The folders whose entries replacing ``entry`` changes: its parent, and every folder inside it."""
    path = work_dir / entry
    folders = [path.parent]
    if path.is_dir() and not path.is_symlink():
        folders += [Path(root) for root, _, _ in os.walk(path)]
    return folders


def _check_spares_input(work_dir: Path, video_name: str, source: Path, option: str) -> None:
    """Raise ``ValueError`` when a path the job writes or replaces is ``source`` or holds it."""
    if not _exists(source):
        return
    real = source.resolve()
    for entry in result_entries(video_name):
        path = work_dir / entry
        if not _exists(path):
            continue
        if (
            source.is_file() and path.is_file() and os.path.samefile(path, source)
        ) or real.is_relative_to(path.resolve()):
            raise InputError(
                f"{option} {work_dir}: this run would replace {path}, which is the input {source}; pass another "
                f"{option}, or move or rename the input"
            )


def sweep_leftovers(work_dir: Path) -> None:
    """Delete the staging folders in ``work_dir`` that no live run holds (those of killed runs)."""
    if not work_dir.is_dir():  # without flock (Windows) every one is held: none is swept
        return
    for folder in work_dir.glob(f"{STAGING_PREFIX}*"):
        # one holding an earlier result's files that could not be put back stays (``Staging.close``)
        if _a_folder(folder) and not is_held(folder / _LOCK) and not _holds_files(folder / _ASIDE):
            logger.info("removing %s, left by a run that was killed", folder)
            shutil.rmtree(folder, ignore_errors=True)
    for folder in work_dir.glob(f"{_NEW_PREFIX}*"):  # killed while making its staging folder
        if _a_folder(folder) and _older_than(folder, _NEW_GRACE_S) and not is_held(folder / _LOCK):
            shutil.rmtree(folder, ignore_errors=True)


def _a_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def result_in_place(stop: BaseException) -> bool:
    """Whether a stop (``KeyboardInterrupt``) came during ``Staging.promote``'s renames, which it waited for: the
    job's new result is then in its folder, whole."""
    return bool(getattr(stop, "result_in_place", False))


class Staging:
    """Where one job writes (``dir``), and how its result replaces the earlier one in ``work_dir``.

    Args:
        work_dir: the job's folder (created if missing).
        video_name: the job's ``JobPlan.video_name``.
        keep: entries of an earlier result to leave in place (a re-render keeps the mask cache it reads).
        source: the job's input, which must not be among the paths it replaces (``check_replaceable``).
        folder: ``work_dir``'s lock (``job_locks.FolderLock``), when the caller holds it already (a re-render into
            the run's folder whose cache it reads); let go of by ``close`` as the one taken here would be.
    """

    def __init__(
        self,
        work_dir: Path,
        video_name: str,
        *,
        keep: tuple[str, ...] = (),
        source: Path | None = None,
        folder: FolderLock | None = None,
    ) -> None:
        self.work_dir, self.video_name, self.keep = work_dir, video_name, keep
        self.promoted = False
        self._lock_fd: int | None = None
        # held until the job ends: a second job into work_dir is refused at once
        self._folder = FolderLock(work_dir) if folder is None else folder
        try:
            sweep_leftovers(work_dir)
            earlier = _replaceable(
                work_dir, video_name, source=source, option="work_dir", keep=keep
            )
            self.staged = earlier is not None and any(e not in keep for e in earlier.entries)
            self.dir = self._make_dir() if self.staged else work_dir
        except BaseException:
            self._folder.release()
            raise

    def _make_dir(self) -> Path:
        """A new staging folder, its lock held: made under a name the sweep does not match, locked, then renamed
        (the lock, on the open file, goes with it), so that no other job's sweep sees it unlocked."""
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        new = self.work_dir / f"{_NEW_PREFIX}{token}"
        folder = self.work_dir / f"{STAGING_PREFIX}{token}"
        new.mkdir()
        try:
            self._lock_fd = lock_file(new / _LOCK)
            os.rename(new, folder)
        except BaseException:
            self._unlock()
            shutil.rmtree(new, ignore_errors=True)
            raise
        return folder

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def promote(self) -> None:
        """Replace the earlier result's files in ``work_dir`` with those the job wrote in ``dir`` (renames), then
        delete the earlier ones (nothing to do when the job wrote into ``work_dir`` itself), and let go of
        ``work_dir`` (``close``). If a rename fails, or the renames are interrupted, the earlier result is put back
        and the error raised. A stop that honours ``job_locks.uninterrupted`` (the CLI's Ctrl-C, SIGTERM) waits
        for the renames, or for their undoing, to end."""
        if self.staged and not self.promoted:
            try:
                with uninterrupted():
                    old = self._swap()
                    self.promoted = True
            # a stop that waited for the renames: the new result is in place
            except KeyboardInterrupt as stop:
                if self.promoted:
                    stop.result_in_place = True  # type: ignore[attr-defined]  (``result_in_place``)
                raise
            for entry in old:
                _remove_empty_parents(self.work_dir / entry, self.work_dir)
        self.promoted = True
        self.close()

    def _swap(self) -> list[str]:
        """Move the earlier result's entries aside and the new ones in; the earlier ones' names."""
        earlier = earlier_result(self.work_dir, self.video_name)
        old = [e for e in (earlier.entries if earlier else ()) if e not in self.keep]
        new = [e for e in result_entries(self.video_name) if _exists(self.dir / e)]
        aside = self.dir / _ASIDE
        aside.mkdir()
        moved: list[tuple[Path, Path]] = []
        try:
            for i, entry in enumerate(old):
                moved.append((self.work_dir / entry, aside / str(i)))
                os.replace(*moved[-1])
            for entry in new:
                (self.work_dir / entry).parent.mkdir(parents=True, exist_ok=True)
                moved.append((self.dir / entry, self.work_dir / entry))
                os.replace(*moved[-1])
        except BaseException:
            _put_back(moved)
            raise
        return old

    def close(self) -> None:
        """The job's end, whatever it was: the staging folder of a job that did not finish goes (nothing, once
        promoted or when not staged), and another job may write to ``work_dir``. An earlier result's file that
        could not be put back stays in the staging folder's ``.replaced`` (logged; never deleted, by the sweep
        neither)."""
        try:
            if self.staged:
                self._remove()
        finally:
            self._folder.release()

    def _remove(self) -> None:
        self._unlock()
        if not self.promoted and _holds_files(self.dir / _ASIDE):
            logger.error(
                "%s holds files of the earlier result in %s that could not be put back: move them back by hand",
                self.dir / _ASIDE, self.work_dir,
            )  # fmt: skip
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def final_path(self, path: Path | None) -> Path | None:
        """Where ``path``, written under ``dir``, is once promoted (other paths as they are)."""
        if path is None or not self.staged or not path.is_relative_to(self.dir):
            return path
        return self.work_dir / path.relative_to(self.dir)

    def rebased(self, obj: T) -> T:
        """A dataclass ``obj`` with its ``Path`` fields under ``dir`` moved to ``work_dir`` (``final_path``)."""
        changes = {
            f.name: self.final_path(getattr(obj, f.name))
            for f in fields(obj)  # type: ignore[arg-type]
            if isinstance(getattr(obj, f.name), Path)
        }
        return replace(obj, **changes)  # type: ignore[type-var]


def _put_back(moved: list[tuple[Path, Path]]) -> None:
    """Undo the renames ``moved`` (the last first); one that fails is logged, and the others are still undone."""
    for src, dst in reversed(moved):
        try:
            if _exists(dst):
                os.replace(dst, src)
        # a second stop where no handler defers it (``job_locks.uninterrupted``) too: the others still go back
        except (OSError, KeyboardInterrupt) as error:
            logger.error("could not put %s back at %s: %s", dst, src, error)


def _holds_files(folder: Path) -> bool:
    try:
        return any(folder.iterdir())
    except OSError:
        return False


def _remove_empty_parents(path: Path, top: Path) -> None:
    """Remove the folders above ``path`` up to ``top`` (excluded) that are left empty."""
    for parent in path.parents:
        if parent == top or not parent.is_relative_to(top):
            return
        try:
            parent.rmdir()
        except OSError:
            return
