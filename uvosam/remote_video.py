"""Fetch a video file (or a zip of frames, or a GIF) from a direct http(s) link, safely enough for a public server.

``download_video(url, dest_dir, max_bytes=..., timeout_s=...)`` streams the response body into a file in
``dest_dir`` (constant memory) and returns its path. Standard library only (``http.client``, ``socket``, ``ssl``);
no proxy settings are read. Its parts: ``uvosam.remote_links`` (parsing and vetting a link),
``uvosam.remote_connect`` (which addresses may be reached, checked connections), ``uvosam.remote_files`` (the
file's name and kind); this module follows redirects, checks the response, streams the body and says what failed.

Refused, each with a ``RemoteVideoError`` that says what came and what to do:

* anything but an ``http``/``https`` link with a host, and links to video *pages* (YouTube, Vimeo, TikTok...),
  before any network access (``uvosam.remote_links``); a response that is a web page (``text/html``, or a body
  that starts like one), text, or a streaming playlist (HLS/DASH: links to further files);
* hosts inside the server's own network (SSRF), unless ``allow_private``: every address a host name resolves to
  must be public, and so must the address the socket actually reached, before a request byte is sent (for https,
  before the TLS handshake; ``uvosam.remote_connect``). Every redirect is checked the same way;
* more than ``max_redirects`` redirects, or a redirect loop;
* a body over ``max_bytes``: at once from its Content-Length, else when the count passes it while streaming;
* a server silent for ``read_timeout_s``, or a download not done ``timeout_s`` after it started (a watchdog cuts
  the connection even while a server trickles its headers or its TLS handshake);
* HTTP errors (404, 403, 5xx...) and network errors (DNS, refused, TLS, reset), named by host and status, the
  network error chained as the cause;
* a download that cannot be saved in ``dest_dir`` (a full disk, no permission, a read-only file system): the
  message says so (``uvosam.errors.write_problem``), the local ``OSError`` chained as the cause.

A partial or refused download leaves no file. Credentials in a link (``user:pass@``) are sent as HTTP Basic
authentication to the link's own origin only (never to another host it redirects to) and appear in no message
or log.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

from uvosam import __version__
from uvosam.errors import RemoteVideoError, out_of_space, write_problem
from uvosam.remote_connect import (
    AddressCheck,
    CheckedHTTPConnection,
    CheckedHTTPSConnection,
    is_public_address,
)
from uvosam.remote_files import place_file, safe_file_name
from uvosam.remote_links import PAGE_HINT, Link, parse_link, refuse_page_link

__all__ = ["download_video"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]

PAGE_TYPES = ("text/html", "application/xhtml+xml")
PLAYLIST_TYPES = (
    "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl",
    "application/dash+xml",
)  # fmt: skip
TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = f"uvosam/{__version__} (video download; Python http.client)"
_CHUNK = 1 << 16
_SNIFF = 256  # bytes of the body looked at for a page or a playlist


class _Watchdog:
    """Cuts the current connection ``seconds`` after it started whatever it waits for (a trickled header or body, a
    stalled TLS handshake): a blocked read then returns at once. (A DNS lookup cannot be cut: the deadline is
    checked when it returns.)"""

    def __init__(self, seconds: float) -> None:
        self.conn: http.client.HTTPConnection | None = None
        self.fired = threading.Event()
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def _cut(self) -> None:
        self.fired.set()
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # closed meanwhile: nothing left to cut
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket, under TLS too

    @classmethod
    @contextlib.contextmanager
    def running(cls, seconds: float) -> Iterator[_Watchdog]:
        """A started watchdog, stopped when the block ends."""
        watchdog = cls(seconds)
        watchdog._timer.start()
        try:
            yield watchdog
        finally:
            watchdog._timer.cancel()


@dataclass(frozen=True)
class _Options:
    max_bytes: int
    timeout_s: float
    read_timeout_s: float
    max_redirects: int
    address_allowed: AddressCheck | None
    progress: Progress | None


def _request(link: Link, options: _Options, watchdog: _Watchdog) -> http.client.HTTPResponse:
    kind = CheckedHTTPSConnection if link.scheme == "https" else CheckedHTTPConnection
    if watchdog.conn is not None:  # the previous hop's
        watchdog.conn.close()
    conn = kind(link.host, link.port, timeout=options.read_timeout_s)
    conn.address_allowed = options.address_allowed
    watchdog.conn = conn
    conn.connect()
    if watchdog.fired.is_set():  # it fired while this connection was being made
        raise _timed_out(link, options)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    if link.auth is not None:
        headers["Authorization"] = link.auth
    conn.request("GET", link.target, headers=headers)
    return conn.getresponse()


def _follow(
    link: Link, options: _Options, watchdog: _Watchdog
) -> tuple[Link, http.client.HTTPResponse]:
    """GET ``link``, following up to ``max_redirects`` redirects (each checked as the first link); credentials
    go to the first link's origin only. Returns the last link and its (non-redirect) response."""
    seen, origin = {link.url}, link.origin
    for _ in range(options.max_redirects + 1):
        response = _request(link, options, watchdog)
        if response.status not in REDIRECTS:
            return link, response
        location = response.getheader("Location")
        response.close()
        if not location:
            raise RemoteVideoError(
                f"{link.host} answered {response.status} (a redirect) for {link.shown} without saying where to: "
                "use the file's final link."
            )
        nxt = parse_link(urljoin(link.url, location.strip()))
        refuse_page_link(nxt)
        if nxt.url in seen:
            raise RemoteVideoError(
                f"{link.shown} redirects in a loop (back to {nxt.shown}): check the link."
            )
        seen.add(nxt.url)
        link = nxt if nxt.origin == origin else replace(nxt, auth=None)
    raise RemoteVideoError(
        f"{link.shown} redirects more than {options.max_redirects} times: use the file's final link."
    )


def _http_error(link: Link, status: int, reason: str) -> RemoteVideoError:
    if status in (401, 403):
        fix = "the file is not public or the link has expired: use a public direct link, or upload the file"
    elif status in (404, 410):
        fix = "there is no file at that link: check it"
    elif status == 429:
        fix = "the server limits requests: try again later"
    elif status >= 500:
        fix = "the server has a problem: try again later"
    else:
        fix = "expected 200 OK with the file: use a direct link to it"
    return RemoteVideoError(f"{link.host} answered {status} {reason} for {link.shown}: {fix}.")


def _check_response(link: Link, response: http.client.HTTPResponse, max_bytes: int) -> str:
    """The response's content type, after refusing what is not a file to download (pages, text, playlists, an
    error status, an announced size over ``max_bytes``, compression)."""
    if response.status not in (200, 203):
        raise _http_error(link, response.status, response.reason)
    kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
    if kind in PAGE_TYPES:
        raise RemoteVideoError(
            f"{link.shown} is a web page ({kind}), not a video file: {PAGE_HINT}."
        )
    if kind in PLAYLIST_TYPES:
        raise RemoteVideoError(
            f"{link.shown} is a streaming playlist ({kind}), not a video file: HLS/DASH streams are not supported; "
            "use a direct link to an .mp4/.webm file."
        )
    if kind.startswith("text/") or kind in TEXT_TYPES:
        raise RemoteVideoError(
            f"{link.shown} is text ({kind}), not a video file: use a direct link to the file."
        )
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise RemoteVideoError(
            f"{link.host} sent {link.shown} compressed ({encoding}) although asked not to: download it yourself "
            "and upload the file."
        )
    if response.length is not None and response.length > max_bytes:
        raise _too_big(link, max_bytes, size=response.length)
    return kind


def _too_big(link: Link, max_bytes: int, *, size: int | None) -> RemoteVideoError:
    what = (
        f"is {size / 2**20:.1f} MiB"
        if size is not None
        else "goes on past the limit (the download was stopped)"
    )
    return RemoteVideoError(
        f"{link.shown} {what}; at most {max_bytes / 2**20:.1f} MiB are accepted here: trim or compress the video, "
        "or lower its resolution."
    )


def _refuse_by_content(link: Link, head: bytes) -> None:
    """Refuse a body that starts as a web page or a streaming playlist, whatever its content type said."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise RemoteVideoError(f"{link.shown} is a web page, not a video file: {PAGE_HINT}.")
    if start.startswith(b"#extm3u") or (start.startswith(b"<?xml") and b"<mpd" in start):
        raise RemoteVideoError(
            f"{link.shown} is a streaming playlist (HLS/DASH), not a video file: use a direct link to an "
            ".mp4/.webm file."
        )


def _stream(
    link: Link,
    response: http.client.HTTPResponse,
    out: os.PathLike,
    options: _Options,
    watchdog: _Watchdog,
) -> int:
    """Write the body to ``out``, one bounded read at a time; returns its size.

    Raises:
        RemoteVideoError: over ``max_bytes``, a page or playlist body, empty, cut short, past the deadline.
    """
    total, head, expected = 0, b"", response.length
    with _saving(link, out):
        file = open(out, "wb")  # noqa: SIM115 (closed below, its errors as the file's)
    with file:
        # one recv at most: a trickle cannot fill a buffer slowly
        while chunk := response.read1(_CHUNK):
            if watchdog.fired.is_set():
                break
            if len(head) < _SNIFF:
                head += chunk[: _SNIFF - len(head)]
                if len(head) >= _SNIFF:
                    _refuse_by_content(link, head)
            total += len(chunk)
            if total > options.max_bytes:
                raise _too_big(link, options.max_bytes, size=None)
            with _saving(link, out):
                file.write(chunk)
                file.flush()  # a full disk is met here, not in the network's code
            if options.progress is not None:
                options.progress(total, expected)
    if watchdog.fired.is_set():
        raise _timed_out(link, options, total)
    _refuse_by_content(link, head)
    if total == 0:
        raise RemoteVideoError(f"{link.shown} is empty (0 bytes): check the link.")
    if expected is not None and total < expected:
        raise RemoteVideoError(
            f"{link.host} stopped sending {link.shown} after {total} of {expected} bytes: try again."
        )
    return total


@contextlib.contextmanager
def _saving(link: Link, part: os.PathLike) -> Iterator[None]:
    """Raise the ``OSError`` of a local write to ``part`` (a full disk...) as the ``RemoteVideoError`` that says so,
    not as a network error with the link's host."""
    try:
        yield
    except OSError as err:
        raise _not_saved(link, Path(part).parent, err) from err


def _not_saved(link: Link, folder: Path, err: OSError) -> RemoteVideoError:
    """The ``RemoteVideoError`` of a download that cannot be written into ``folder``."""
    problem = write_problem(err, folder) or f"cannot write in {folder} ({err.strerror or err})"
    fix = (
        "Free some space there, or try again later"
        if out_of_space(err)
        else "Save it in a folder you can write to"
    )
    return RemoteVideoError(
        f"Could not download {link.shown}: the file cannot be saved: {problem}. {fix}."
    )


def _amount(size: int) -> str:
    """``size`` bytes for people: "512 bytes", "40 KiB", "3.2 MiB"."""
    if size < 1024:
        return f"{size} bytes"
    return f"{size / 1024:.0f} KiB" if size < 1 << 20 else f"{size / 2**20:.1f} MiB"


def _timed_out(link: Link, options: _Options, received: int | None = None) -> RemoteVideoError:
    got = f" (got {_amount(received)})" if received else ""
    return RemoteVideoError(
        f"Downloading {link.shown} took longer than {options.timeout_s:g} s{got}: the server is too slow for this "
        "limit; download the file yourself and upload it."
    )


def _network_error(link: Link, err: Exception, options: _Options) -> RemoteVideoError:
    host, retry = link.host, "Try again later"
    if isinstance(err, socket.gaierror):
        what, fix = f"the host {host} was not found (DNS: {err.strerror or err})", "Check the link"
    elif isinstance(err, ssl.SSLCertVerificationError):
        what, fix = (
            f"the TLS certificate of {host} is not valid ({err.verify_message})",
            "Check the link",
        )
    elif isinstance(err, ssl.SSLError):
        what = f"the TLS connection to {host} failed ({err.reason or err})"
        fix = "Check whether the link is https:// or http://"
    elif isinstance(err, TimeoutError):
        what, fix = f"{host} did not answer within {options.read_timeout_s:g} s", retry
    elif isinstance(err, ConnectionRefusedError):
        what, fix = f"{host} refused the connection on port {link.port}", "Check the link"
    elif isinstance(err, (http.client.HTTPException, ConnectionError)):
        what, fix = f"{host} broke off the connection ({type(err).__name__})", retry
    else:
        what, fix = f"network error with {host} ({err})", retry
    return RemoteVideoError(f"Could not download {link.shown}: {what}. {fix}.")


def _file_name(link: Link, response: http.client.HTTPResponse, content_type: str) -> str:
    # Content-Disposition, RFC 2231 (filename*=UTF-8'') included
    given = response.msg.get_filename()
    return safe_file_name(given or PurePosixPath(link.path).name, content_type)


def download_video(
    url: str,
    dest_dir: str | Path,
    *,
    max_bytes: int,
    timeout_s: float = 60.0,
    read_timeout_s: float = 15.0,
    allow_private: bool = False,
    max_redirects: int = 5,
    address_allowed: AddressCheck | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download the file at a direct http(s) link into ``dest_dir`` (see the module docstring for what is refused).

    Args:
        url: the link. dest_dir: an existing folder; the file is written there and nowhere else.
        max_bytes: largest accepted file. timeout_s: the whole download's deadline (connecting, redirects, body).
        read_timeout_s: longest silence of the server (each connect and read).
        allow_private: also fetch from loopback/private/link-local addresses (local use, tests); the default
            refuses them, as a public server must.
        max_redirects: redirects followed at most.
        address_allowed: which resolved addresses may be connected to (default ``is_public_address``, or all with
            ``allow_private``); each hop's addresses and the peer actually reached are checked with it.
        progress: called with (bytes so far, total size or None) after each chunk.

    Returns:
        The file: ``dest_dir/<name>``, the name from the response's Content-Disposition or the link's path
        (``remote_files.safe_file_name``), ``-1``, ``-2``... added when taken.

    Raises:
        RemoteVideoError: every refusal and failure (the network error chained); nothing is left in ``dest_dir``.
    """
    link = parse_link(url)
    refuse_page_link(link)
    allowed = address_allowed
    if allowed is None and not allow_private:
        allowed = is_public_address
    options = _Options(max_bytes, timeout_s, read_timeout_s, max_redirects, allowed, progress)
    dest = Path(dest_dir)
    started = time.monotonic()
    logger.info("downloading %s", link.shown)
    try:
        fd, part_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=dest)
    except OSError as err:
        raise _not_saved(link, dest, err) from err
    os.close(fd)
    part = Path(part_name)
    try:
        with _Watchdog.running(timeout_s) as watchdog:
            try:
                link, response = _follow(link, options, watchdog)
                kind = _check_response(link, response, max_bytes)
                size = _stream(link, response, part, options, watchdog)
            except (OSError, http.client.HTTPException) as err:
                fired = watchdog.fired.is_set()
                raise (
                    _timed_out(link, options) if fired else _network_error(link, err, options)
                ) from err
            finally:
                if watchdog.conn is not None:
                    watchdog.conn.close()
        final = place_file(part, dest, _file_name(link, response, kind))
    finally:
        part.unlink(missing_ok=True)
    logger.info(
        "downloaded %s: %.1f MiB in %.1f s", link.shown, size / 2**20, time.monotonic() - started
    )
    return final
