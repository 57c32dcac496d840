"""Finding and fetching weight files (which ones exist: ``uvosam.weight_table``).

``resolve(name_or_path)`` returns a local path to a verified weight file. Places, in order:

1. an explicit path that exists (verified against the table when its basename is a known file);
2. ``checkpoints/<basename>`` (``checkpoints_dir``: env ``UVOSAM_CHECKPOINTS``, else
   ``<repo>/checkpoints`` in a checkout, else ``~/.cache/uvosam/checkpoints``: ``default_checkpoints_dir``);
3. the Hugging Face cache, then the Hub, via ``huggingface_hub.hf_hub_download`` (cache only when
   ``HF_HUB_OFFLINE`` is set; the variable is read at call time; cache only, too, for ``HUB_RETRY_AFTER_S`` after a
   connection to the Hub failed: huggingface_hub retries an unreachable Hub for ~25 s a file, which the second
   file of a run is then spared, and a warning says once to set ``HF_HUB_OFFLINE=1``; a Hub whose host name does
   not resolve, the usual offline case, is found so in milliseconds before huggingface_hub is asked at all, and
   looked up again after ``HUB_NAME_RETRY_AFTER_S``);
4. the spec's direct public ``url`` (not when offline), saved into ``checkpoints_dir``.

Every file found is checked against the table (``uvosam.weight_checksums``: size, then a SHA-256 computed once and
remembered). A bad file in ``checkpoints/`` raises ``WeightsError`` and is left alone (it is the user's). A bad
file in the HF cache is deleted (snapshot entry and blob) and downloaded again once; still bad ->
``WeightsError``. Loading a file found here: ``uvosam.weight_loading``.

Fetches of one file take turns (``job_locks.waited_lock``: a ``flock`` on ``<file>.lock`` beside it, in
``checkpoints/`` or the HF snapshot folder): two app sessions, worker processes or a CLI and an app on one folder
fetch it once, the one that waited uses the file the first one left, and a cached copy is not deleted under one
fetched again a moment ago.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import importlib.util
import logging
import os
import secrets
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import EntryNotFoundError  # (.errors has it only from 0.25)

from uvosam.errors import MissingWeightsError, WeightsError, in_chain
from uvosam.job_locks import waited_lock
from uvosam.weight_checksums import (
    CHUNK_BYTES,
    check_copy,
    remember_sha256,
    sidecar_path,
    verify_file,
)
from uvosam.weight_table import WeightSpec, lookup, unknown_weights_message

logger = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[1]


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network errors (connection reset, timeout) of the HTTP library huggingface_hub downloads
    with: httpx2 or httpx (not ``OSError``s, and a reset mid-file is not retried); requests'
    errors are ``OSError``s already."""
    return tuple(
        importlib.import_module(name).TransportError
        for name in ("httpx2", "httpx")
        if importlib.util.find_spec(name) is not None
    )


# what a failed Hub download (hf_hub_download) can raise: the Hub is then "not available"
_DOWNLOAD_ERRORS = (OSError, ValueError, EntryNotFoundError, *_transport_errors())

HUB_RETRY_AFTER_S = 600.0
"""After a connection to the Hub failed, weight files are looked up in the Hugging Face cache only (the Hub is not
asked) for this many seconds; then the Hub is asked again (a server that runs for days is not cut off for good)."""

HUB_NAME_RETRY_AFTER_S = 30.0
"""After the Hub's host name did not resolve, its name is looked up again (and the Hub asked) after this many seconds:
long enough to spare the other file of one command or one app start the lookup, short enough that a DNS blip does
not cut a server off the Hub for ``HUB_RETRY_AFTER_S``."""

# Hub endpoint -> (time.monotonic() of the failure, its reason, whether its name did not resolve)
_UNREACHABLE: dict[str, tuple[float, str, bool]] = {}


def _connection_errors() -> tuple[type[Exception], ...]:
    """The errors that mean no connection to the Hub could be made (no network, no DNS, refused, timed out while
    connecting), of whichever HTTP library huggingface_hub uses: httpx2, httpx or requests."""
    errors: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            errors += [module.ConnectError, module.ConnectTimeout]
    if importlib.util.find_spec("requests") is not None:
        errors.append(importlib.import_module("requests").exceptions.ConnectionError)
    return tuple(errors)


def _connection_failure(err: BaseException) -> BaseException | None:
    """The connection error in ``err``'s chain (huggingface_hub raises ``LocalEntryNotFoundError`` from it), else
    ``None``."""
    errors = _connection_errors()
    return in_chain(err, lambda one: isinstance(one, errors))


def _unreachable_reason() -> str | None:
    """Why the Hub could not be reached, if a connection to it failed less than ``HUB_RETRY_AFTER_S`` ago (its name
    did not resolve: ``HUB_NAME_RETRY_AFTER_S``)."""
    entry = _UNREACHABLE.get(hf_constants.ENDPOINT)
    if entry is None or time.monotonic() - entry[0] > _retry_after_s(by_name=entry[2]):
        return None
    return entry[1]


def _retry_after_s(*, by_name: bool) -> float:
    return HUB_NAME_RETRY_AFTER_S if by_name else HUB_RETRY_AFTER_S


def _note_unreachable(err: BaseException) -> None:
    """Remember a failed connection to the Hub (nothing for other errors: a missing file, a reset mid-download)."""
    failure = _connection_failure(err)
    if failure is not None:
        _remember_unreachable(
            f"{type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
        )


def _remember_unreachable(reason: str, *, by_name: bool = False) -> None:
    """Look in the cache only for the next ``HUB_RETRY_AFTER_S`` (``by_name``: ``HUB_NAME_RETRY_AFTER_S``), and say
    once what to do."""
    if _unreachable_reason() is None:
        retry = _retry_after_s(by_name=by_name)
        logger.warning(
            "The Hugging Face Hub (%s) cannot be reached (%s). Weight files are looked for in the Hugging Face "
            "cache only for the next %s, without asking the Hub again. Working offline? Set HF_HUB_OFFLINE=1: the "
            "Hub is then never asked (huggingface_hub retries a connection that fails for ~25 s a file).",
            hf_constants.ENDPOINT, reason, f"{retry / 60:.0f} minutes" if retry >= 120 else f"{retry:.0f} s",
        )  # fmt: skip
    _UNREACHABLE[hf_constants.ENDPOINT] = (time.monotonic(), reason, by_name)


def _host_lookup_failure(host: str) -> str | None:
    """Why ``host``'s name does not resolve (no network, no DNS server), else ``None``."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return f"its host name {host} does not resolve: {err.strerror or err}"
    return None


def _hub_unreachable_by_name() -> str | None:
    """Why the Hub cannot be reached, when its host name does not resolve: the usual offline case, found in
    milliseconds (where the resolver fails at once), where huggingface_hub would retry the lookup for ~23 s before
    giving up; remembered for ``HUB_NAME_RETRY_AFTER_S``. ``None`` when it resolves, and when a proxy that the Hub's
    host does not bypass is set in the environment (the proxy resolves names then)."""
    host = urllib.parse.urlsplit(hf_constants.ENDPOINT).hostname
    if host is None:
        return None
    proxies = urllib.request.getproxies()  # may hold only "no" (NO_PROXY): no proxy
    if any(
        proxies.get(scheme) for scheme in ("https", "http", "all")
    ) and not urllib.request.proxy_bypass(host):
        return None
    reason = _host_lookup_failure(host)
    if reason is not None:
        _remember_unreachable(reason, by_name=True)
    return reason


def default_checkpoints_dir() -> Path:
    """``$UVOSAM_CHECKPOINTS`` if set; else the repository's ``checkpoints/`` when uvosam runs from a checkout (an
    editable install, a Space); else (a wheel in site-packages) ``$XDG_CACHE_HOME/uvosam/checkpoints`` (default
    ``~/.cache/uvosam/checkpoints``), so nothing is downloaded into site-packages."""
    env = os.environ.get("UVOSAM_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    if (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "uvosam" / "checkpoints"


def resolve(
    name_or_path: str | os.PathLike,
    *,
    role: str | None = None,
    checkpoints_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
) -> Path:
    """Find (or download) a weight file and return its local path, checksum-verified.

    Args:
        name_or_path: a key of ``WEIGHTS`` (``"sam_vit_h"``) or a file path. A path that does not
            exist but whose basename is a known file (``ckpt/sam_vit_h_4b8939.pth``) is looked up
            like its name.
        role: ``"tracker"`` or ``"sam"``: what the file is for; an unknown name is told that role's names
            (``unknown_weights_message``). None: every name.
        checkpoints_dir: folder searched by basename; default ``default_checkpoints_dir()``.
        cache_dir: Hugging Face cache folder; ``None`` = huggingface_hub's default
            (``HF_HUB_CACHE``/``HF_HOME``).
        verify: check size and SHA-256 against the table (cached, see module docstring).

    Raises:
        MissingWeightsError: (a ``FileNotFoundError``) nowhere to be found; the message lists every place looked
            and how to get the file.
        WeightsError: found, but the size or checksum is wrong (and, for the HF cache,
            re-downloading did not help).
    """
    spec, explicit = lookup(name_or_path)
    if explicit is not None and explicit.is_file():
        if spec is not None and verify:
            verify_file(explicit, spec)
        return explicit
    if spec is None:
        raise MissingWeightsError(
            unknown_weights_message(str(name_or_path), role, f"no file at {explicit}")
        )
    looked = [f"{explicit} (the path given)"] if explicit is not None else []
    ckdir = (
        Path(checkpoints_dir).expanduser()
        if checkpoints_dir is not None
        else default_checkpoints_dir()
    )
    local = ckdir / spec.basename
    if local.is_file():
        if verify:
            verify_file(local, spec)
        return local
    looked.append(f"{local} (checkpoints folder)")
    if spec.repo_id is not None:
        found = _from_hub(spec, cache_dir, verify, looked, ckdir)
        if found is not None:
            return found
    if spec.url is not None and not _offline():
        found = _from_url(spec, local, verify, looked)
        if found is not None:
            return found
    raise MissingWeightsError(_missing_message(spec, looked, ckdir))


def _offline() -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return env in {"1", "true", "yes", "on"} or bool(hf_constants.HF_HUB_OFFLINE)


def hf_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The Hugging Face cache folder weight files are looked up in: ``cache_dir``, else huggingface_hub's
    ``HF_HUB_CACHE`` read now (given explicitly to huggingface_hub: before 0.25 its functions use the value it had
    when they were imported)."""
    return Path(cache_dir) if cache_dir is not None else Path(hf_constants.HF_HUB_CACHE)


def _hf_download(
    spec: WeightSpec, cache_dir, *, local_files_only: bool, force: bool = False
) -> Path:
    path = huggingface_hub.hf_hub_download(
        repo_id=spec.repo_id,
        filename=spec.filename,
        cache_dir=hf_cache_dir(cache_dir),
        local_files_only=local_files_only,
        force_download=force,
    )
    return Path(path)


def _from_hub(
    spec: WeightSpec, cache_dir, verify: bool, looked: list[str], ckdir: Path
) -> Path | None:
    """HF cache (and Hub unless offline or found unreachable a moment ago); a bad cached copy is deleted and
    fetched again once. ``ckdir``: the checkpoints folder, where the messages say a good copy can go."""
    offline = _offline()
    unreachable = None if offline else (_unreachable_reason() or _hub_unreachable_by_name())
    cache_only = offline or unreachable is not None
    kind = "cache" if cache_only else "cache and Hub"
    where = f"Hugging Face {kind} {hf_cache_dir(cache_dir)} ({spec.repo_id}: {spec.filename})"
    try:
        path = _hf_download(spec, cache_dir, local_files_only=cache_only)
    except _DOWNLOAD_ERRORS as err:
        if not cache_only:
            _note_unreachable(err)
        said = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        # the cache was looked in: the file is not there (huggingface_hub's LocalEntryNotFoundError), or it could
        # not be read (a HOME that is not a folder: NotADirectoryError reading the token)
        cache = (
            "not in the cache"
            if isinstance(err, FileNotFoundError)
            else f"the cache cannot be read ({said})"
        )
        if offline:
            reason = f"{cache}; the Hub was not asked because HF_HUB_OFFLINE is set"
        elif unreachable is not None:
            reason = f"{cache}; the Hub was not asked: it cannot be reached ({unreachable})"
        else:
            reason = said
        looked.append(f"{where} — not available ({reason})")
        return None
    if not verify:
        return path
    try:
        verify_file(path, spec)
        return path
    except (WeightsError, FileNotFoundError) as err:  # not found: deleted by another fetch since
        bad = err
    # another uvosam deleting and fetching it again meanwhile: wait, then look again
    with waited_lock(path.with_name(path.name + ".lock")):
        try:
            verify_file(path, spec)
            return path
        except (WeightsError, FileNotFoundError):
            pass
        try:
            _delete_cached(path)
        except OSError as err:  # a read-only cache
            raise WeightsError(
                f"{bad} The bad copy could not be deleted from the Hugging Face cache ({err.strerror}): delete it "
                f"there, or put a good copy in {ckdir}/."
            ) from None
        if cache_only:
            why = (
                "HF_HUB_OFFLINE is set, so it was not downloaded again: unset HF_HUB_OFFLINE and run again"
                if offline
                else f"the Hub cannot be reached ({unreachable}), so it was not downloaded again: run again online"
            )
            raise WeightsError(
                f"{bad} The bad copy was deleted from the Hugging Face cache; {why}, or put a good copy in "
                f"{ckdir}/."
            ) from None
        logger.warning("%s Deleted the cached copy; downloading it again once.", bad)
        try:
            path = _hf_download(spec, cache_dir, local_files_only=False, force=True)
        except _DOWNLOAD_ERRORS as err:
            raise WeightsError(
                f"The cached {spec.basename} was corrupt and was deleted; downloading it again "
                f"failed ({err}). "
                f"Check the connection and run again, or put a good copy in {ckdir}/."
            ) from err
        verify_file(path, spec)
    return path


def _delete_cached(path: Path) -> None:
    """Delete a snapshot entry of the HF cache, the blob it links to, and its sidecar."""
    real = path.resolve()
    for p in (path, sidecar_path(path), real):
        p.unlink(missing_ok=True)


def _from_url(spec: WeightSpec, dest: Path, verify: bool, looked: list[str]) -> Path | None:
    """Stream ``spec.url`` to ``dest``, hashing on the way; None on failure. Under ``waited_lock``: a fetch that
    waited for another one uses (and verifies) the file it left; each writes its own ``.<file>.<random>.part``, renamed
    into place when complete (leftovers of killed fetches are deleted while the lock is held)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with waited_lock(dest.with_name(dest.name + ".lock")) as held:
            if dest.is_file():
                if verify:
                    verify_file(dest, spec)
                return dest
            if held:
                _delete_leftovers(dest)
            return _fetch(spec, dest, verify)
    except (OSError, http.client.HTTPException) as err:  # IncompleteRead: a chunked body cut short
        looked.append(f"{spec.url} — download failed ({type(err).__name__}: {err})")
        return None


def _delete_leftovers(dest: Path) -> None:
    """The partial files of fetches of ``dest`` that were killed (``<file>.part``: of versions before ``_fetch``'s)."""
    pattern = glob.escape(str(dest.with_name(f".{dest.name}."))) + "*.part"
    for left in [*glob.glob(pattern), dest.with_name(dest.name + ".part")]:
        Path(left).unlink(missing_ok=True)


def _fetch(spec: WeightSpec, dest: Path, verify: bool) -> Path:
    """Download to a file of this fetch's own beside ``dest`` (created with the umask's mode, as ``dest`` will keep),
    check it and rename it to ``dest``."""
    part = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
    digest = hashlib.sha256()
    try:
        with open(part, "xb") as out, urllib.request.urlopen(spec.url, timeout=60) as resp:
            while chunk := resp.read(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            _check_complete(resp, os.fstat(out.fileno()).st_size)
        if verify:
            check_copy(
                part,
                spec,
                part.stat().st_size,
                digest.hexdigest(),
                hint=f"Got from {spec.url}; try again.",
            )
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    remember_sha256(dest, digest.hexdigest())
    return dest


def _check_complete(resp: http.client.HTTPResponse, received: int) -> None:
    """Raise ``OSError`` when a response announced more (or fewer) bytes than came: a server that closes early
    ends the body without an error, and a file without a published checksum would be kept cut short."""
    announced = resp.headers.get("Content-Length")
    if announced is not None and announced.isdecimal() and int(announced) != received:
        raise OSError(f"the server announced {int(announced)} bytes but sent {received}: cut short")


def download_command(spec: WeightSpec) -> str:
    """The shell command that puts ``spec``'s file (one on the Hub) into the Hugging Face cache: ``hf download``,
    and ``huggingface-cli download`` for a huggingface_hub before 0.34, which has no ``hf``."""
    args = f"{spec.repo_id} {spec.filename}"
    return f"`hf download {args}` (huggingface_hub < 0.34: `huggingface-cli download {args}`)"


def _missing_message(spec: WeightSpec, looked: list[str], ckdir: Path) -> str:
    lines = [
        (
            f"Weight file {spec.basename!r} ({spec.name}: {spec.description}; "
            f"{spec.size_text}) was not found."
        ),
        "Looked in:",
        *[f"  - {place}" for place in looked],
        "To get it, either:",
    ]
    if spec.repo_id is not None:
        lines.append(f"  - run {download_command(spec)}, which fills the Hugging Face cache, or")
    urls = " or ".join(u for u in (spec.hub_url, spec.url) if u is not None)
    lines.append(
        f"  - download {urls} and put the file in {ckdir}/ (or set UVOSAM_CHECKPOINTS to the "
        f"folder holding it)."
    )
    if spec.sha256 is not None:
        lines.append(f"Expected sha256 {spec.sha256}.")
    return "\n".join(lines)
