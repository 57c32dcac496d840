"""uvosam.remote_video against a real local HTTP server (127.0.0.1, a handler per path): downloads, names, limits,
deadlines, redirects, pages, and the refusal of addresses inside the server's network (SSRF), which must happen
before any connection is made."""

from __future__ import annotations

import base64
import errno
import http.client
import io
import ipaddress
import logging
import socket
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from clip_helpers import write_video
from doubles import ReplayTracker
from http_helpers import redirect, send, serving

import uvosam_cli
import uvosam_cli.segment as segment_cli
from uvosam import remote_connect, remote_links
from uvosam.errors import RemoteVideoError
from uvosam.pipeline import UVOSAM
from uvosam.remote_connect import is_public_address
from uvosam.remote_files import safe_file_name
from uvosam.remote_video import download_video
from uvosam.segmenter import BoxPromptSegmenter
from uvosam.testing import moving_shapes
from uvosam.video import probe

BODY = bytes(range(256)) * 400  # 100 KiB, "a video"
MP4 = {"Content-Type": "video/mp4"}


@pytest.fixture()
def server():
    with serving() as s:
        yield s


def fetch(url: str, dest: Path, **kwargs) -> Path:
    kwargs.setdefault("allow_private", True)
    kwargs.setdefault("max_bytes", 1 << 20)
    kwargs.setdefault("timeout_s", 10.0)
    return download_video(url, dest, **kwargs)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ success
def test_a_direct_link_is_downloaded_byte_for_byte_with_progress(server, tmp_path):
    server.routes["/media/clip.mp4"] = send(BODY, MP4)
    seen = []
    path = fetch(
        server.url("/media/clip.mp4"), tmp_path, progress=lambda n, total: seen.append((n, total))
    )
    assert path == tmp_path / "clip.mp4" and path.read_bytes() == BODY
    assert files_in(tmp_path) == ["clip.mp4"]  # no partial file left beside it
    assert seen[-1] == (len(BODY), len(BODY)) and len(seen) >= 2
    assert (
        server.seen[0][1]["Accept-Encoding"] == "identity"
        and "Authorization" not in server.seen[0][1]
    )


def test_the_name_comes_from_content_disposition_or_the_path_sanitised(server, tmp_path):
    server.routes["/get"] = send(
        BODY, {**MP4, "Content-Disposition": 'attachment; filename="../../evil clip.mp4"'}
    )
    server.routes["/intl"] = send(
        BODY,
        {
            **MP4,
            "Content-Disposition": "attachment; filename*=UTF-8''%E6%BC%A2%E5%AD%97%20clip.mov",
        },
    )
    server.routes["/v/%C3%A9t%C3%A9.webm"] = send(BODY, {"Content-Type": "video/webm"})
    server.routes["/v/.hidden.mp4"] = send(BODY, MP4)
    # its base name only, inside tmp_path
    assert fetch(server.url("/get"), tmp_path).name == "evil clip.mp4"
    assert fetch(server.url("/intl"), tmp_path).name == "漢字 clip.mov"  # RFC 2231, unicode kept
    assert fetch(server.url("/v/%C3%A9t%C3%A9.webm"), tmp_path).name == "été.webm"
    assert fetch(server.url("/v/.hidden.mp4"), tmp_path).name == "hidden.mp4"  # no hidden file
    assert fetch(server.url("/get"), tmp_path).name == "evil clip-1.mp4"  # nothing is overwritten
    # written there (and nowhere else), no .part file left
    names = ["evil clip.mp4", "漢字 clip.mov", "été.webm", "hidden.mp4", "evil clip-1.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_a_missing_extension_comes_from_the_content_type(server, tmp_path):
    server.routes["/download"] = send(BODY, {"Content-Type": "video/webm; codecs=vp9"})
    server.routes["/file.php"] = send(BODY, {"Content-Type": "image/gif"})
    server.routes["/blob"] = send(BODY, {"Content-Type": "application/octet-stream"})
    assert fetch(server.url("/download?id=3"), tmp_path).name == "download.webm"
    assert fetch(server.url("/file.php"), tmp_path).name == "file.php.gif"
    # unknown: as it is (ffmpeg reads by content)
    assert fetch(server.url("/blob"), tmp_path).name == "blob"


def test_safe_file_name_never_leaves_the_folder():
    assert safe_file_name("..\\..\\windows\\x.avi") == "x.avi"
    assert safe_file_name("a\x00b\nc.mp4") == "a_b_c.mp4"
    assert safe_file_name("...", "video/mp4") == "video.mp4" and safe_file_name("") == "video"
    long = safe_file_name("n" * 500 + ".mkv")
    assert len(long) == 124 and long.endswith(".mkv")


def test_a_downloaded_name_ends_in_a_media_or_zip_extension_or_in_none(server, tmp_path):
    """A name with another extension (.html, .svg: a server showing files by their type shows a page, and runs its
    script in its origin) gets the content type's, or none: its dots become ``_``."""
    page = b"<script>alert(document.domain)</script>"
    attached = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": 'attachment; filename="x.html"',
    }
    server.routes["/get"] = send(page, attached)
    server.routes["/a.b.SVG"] = send(BODY, {"Content-Type": "video/mp4"})
    assert fetch(server.url("/get"), tmp_path).name == "x_html"
    assert fetch(server.url("/a.b.SVG"), tmp_path).name == "a.b.SVG.mp4"
    assert (
        safe_file_name("clip.final.html") == "clip_final_html"
        and safe_file_name("frames.ZIP") == "frames.ZIP"
    )


def test_a_redirect_is_followed(server, tmp_path):
    server.routes["/share/abc"] = redirect("/files/clip.mp4")  # relative, as most servers send
    server.routes["/files/clip.mp4"] = send(BODY, MP4)
    path = fetch(server.url("/share/abc"), tmp_path)
    assert path.name == "clip.mp4" and path.read_bytes() == BODY
    assert [p for p, _ in server.seen] == ["/share/abc", "/files/clip.mp4"]


# -------------------------------------------------------------------------------------- refusals
def test_http_errors_name_the_host_and_status(server, tmp_path):
    server.routes["/gone.mp4"] = send(b"", status=404)
    server.routes["/private.mp4"] = send(b"no", status=403)
    server.routes["/broken.mp4"] = send(b"oops", status=503)
    with pytest.raises(
        RemoteVideoError, match=r"127\.0\.0\.1 answered 404 Not Found for .*/gone\.mp4: there is no"
    ):
        fetch(server.url("/gone.mp4"), tmp_path)
    with pytest.raises(
        RemoteVideoError, match="answered 403 Forbidden .*not public or the link has expired"
    ):
        fetch(server.url("/private.mp4"), tmp_path)
    with pytest.raises(
        RemoteVideoError, match="answered 503 .*server has a problem: try again later"
    ):
        fetch(server.url("/broken.mp4"), tmp_path)
    assert files_in(tmp_path) == []


def test_a_web_page_is_refused_by_type_or_by_content(server, tmp_path):
    page = b"<!DOCTYPE html><html><body>a player</body></html>" * 10
    server.routes["/watch"] = send(page, {"Content-Type": "text/html; charset=utf-8"})
    server.routes["/sneaky.mp4"] = send(page, {"Content-Type": "application/octet-stream"})
    server.routes["/live.m3u8"] = send(
        b"#EXTM3U\n#EXTINF:2,\nhttp://10.0.0.1/seg.ts\n", {"Content-Type": "video/mp4"}
    )
    server.routes["/notes.txt"] = send(b"hello", {"Content-Type": "text/plain"})
    for path, message in [
        (
            "/watch",
            r"is a web page \(text/html\), not a video file: use a direct link to the video file itself",
        ),
        ("/sneaky.mp4", "is a web page, not a video file"),
        (
            "/live.m3u8",
            "is a streaming playlist",
        ),  # links elsewhere, not a file
        ("/notes.txt", r"is text \(text/plain\)"),
    ]:
        with pytest.raises(RemoteVideoError, match=message):
            fetch(server.url(path), tmp_path)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://m.youtube.com/shorts/abc",
        "https://vimeo.com/76979871",
        "https://www.tiktok.com/@someone/video/1",
    ],
)
def test_video_site_page_links_are_refused_without_network(url, tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("the network was used"))
    with pytest.raises(
        RemoteVideoError, match="page link, not a video file: .*YouTube and other video-site page"
    ):
        download_video(url, tmp_path, max_bytes=1 << 20)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # a scheme of its own is told so: "add https:// in front of a bare address" did not fit
        (
            "file:///etc/passwd",
            "only http:// and https:// links are fetched here, not file:// ones; expected",
        ),
        (
            "ftp://example.com/clip.mp4",
            "only http:// and https:// links are fetched here, not ftp:// ones",
        ),
        (
            "data:video/mp4;base64,AAAA",
            "only http:// and https:// links are fetched here, not data: ones",
        ),
        (
            "javascript:alert(1)",
            "only http:// and https:// links are fetched here, not javascript: ones",
        ),
        (
            "example.com/clip.mp4",
            r"is not an http:// or https:// link: .*add https:// in front of a bare address",
        ),
        ("example.com:8080/clip.mp4", r"add https:// in front of a bare address"),
        ("localhost:8000/clip.mp4", r"add https:// in front of a bare address"),
        ("http:///clip.mp4", "has no host"),
        ("http://example.com:99999/clip.mp4", "is not a valid link"),
        ("http://example.com/a\x00b.mp4", "control characters"),
        ("   ", "No link given"),
    ],
)
def test_anything_but_an_http_link_is_refused_with_what_was_expected(
    url, message, tmp_path, monkeypatch
):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("the network was used"))
    with pytest.raises(RemoteVideoError, match=message) as err:
        download_video(url, tmp_path, max_bytes=1 << 20)
    assert "e.g. https://example.com/clip.mp4" in str(err.value)


def test_an_announced_size_over_the_cap_is_refused_before_the_body(server, tmp_path):
    server.routes["/big.mp4"] = send(b"x" * 1000, MP4, length=50 << 20)  # says 50 MiB, then stalls
    started = time.monotonic()
    with pytest.raises(RemoteVideoError, match=r"is 50\.0 MiB; at most 1\.0 MiB are accepted here"):
        fetch(server.url("/big.mp4"), tmp_path, read_timeout_s=5)
    assert time.monotonic() - started < 2 and files_in(tmp_path) == []


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_body_without_a_length_is_cut_at_the_cap(server, tmp_path, framing):
    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "video/mp4")
        if framing == "chunked":
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        for _ in range(400):  # 400 x 8 KiB = 3.1 MiB, over the 1 MiB cap
            data = b"v" * 8192
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if framing == "chunked" else data)
        if framing == "chunked":
            h.wfile.write(b"0\r\n\r\n")

    server.routes["/stream.mp4"] = endless
    with pytest.raises(RemoteVideoError, match="goes on past the limit .*at most 1.0 MiB"):
        fetch(server.url("/stream.mp4"), tmp_path)
    assert files_in(tmp_path) == []


def test_a_body_cut_short_or_empty_leaves_no_file(server, tmp_path):
    def cut(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b"x" * 500)
        h.close_connection = True

    server.routes["/cut.mp4"] = cut
    server.routes["/empty.mp4"] = send(b"", MP4)
    with pytest.raises(RemoteVideoError, match="stopped sending .*after 500 of 1000 bytes"):
        fetch(server.url("/cut.mp4"), tmp_path)
    with pytest.raises(RemoteVideoError, match=r"is empty \(0 bytes\)"):
        fetch(server.url("/empty.mp4"), tmp_path)
    assert files_in(tmp_path) == []


class _FullDisk(io.FileIO):
    """A file on a full disk: every write fails as a write to a full disk does (no file name)."""

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("opened", "said"),
    [
        (_FullDisk, "{dest} is out of disk space. Free some space there"),
        (lambda path, mode: _raise(PermissionError(errno.EACCES, "Permission denied", path)),
         "no permission to write in {dest}. Save it in a folder you can write to"),
    ],
    ids=["full", "no-permission"],
)  # fmt: skip
def test_a_download_that_cannot_be_saved_says_so_not_a_network_error(
    server, tmp_path, monkeypatch, opened, said
):
    """A full disk said "network error with 127.0.0.1 ([Errno 28] No space left on device). Try again later"."""
    from uvosam import remote_video

    server.routes["/clip.mp4"] = send(BODY, MP4)
    monkeypatch.setattr(remote_video, "open", opened, raising=False)
    with pytest.raises(RemoteVideoError) as caught:
        fetch(server.url("/clip.mp4"), tmp_path)
    message = str(caught.value)
    assert message.startswith(
        f"Could not download {server.url('/clip.mp4')}: the file cannot be saved: "
    )
    assert said.format(dest=tmp_path) in message and "network" not in message
    assert isinstance(caught.value.__cause__, OSError)
    assert files_in(tmp_path) == []


def _raise(err: BaseException):
    raise err


@pytest.mark.parametrize("stall", ["body", "headers"])
def test_a_trickling_server_hits_the_overall_deadline(server, tmp_path, stall):
    """One byte every 50 ms never trips the 5 s read timeout; the 0.5 s deadline ends it anyway."""

    def trickle(h: BaseHTTPRequestHandler) -> None:
        if stall == "body":
            h.send_response(200)
            h.send_header("Content-Length", "100000")
            h.end_headers()
        else:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(200):  # at most 10 s: the test asserts it is cut after about 0.5 s
            h.wfile.write(b"a")
            h.wfile.flush()
            time.sleep(0.05)

    server.routes["/slow.mp4"] = trickle
    started = time.monotonic()
    with pytest.raises(
        RemoteVideoError,
        match=r"took longer than 0\.5 s( \(got \d+ bytes\))?: the server is too slow",
    ):
        fetch(server.url("/slow.mp4"), tmp_path, timeout_s=0.5, read_timeout_s=5)
    assert time.monotonic() - started < 2 and files_in(tmp_path) == []


def test_a_silent_server_hits_the_read_timeout(server, tmp_path):
    server.routes["/silent.mp4"] = lambda h: time.sleep(2)
    with pytest.raises(RemoteVideoError, match=r"did not answer within 0\.3 s") as err:
        fetch(server.url("/silent.mp4"), tmp_path, read_timeout_s=0.3)
    assert isinstance(err.value.__cause__, TimeoutError)  # the network error, chained


def test_redirect_loops_and_chains_are_cut(server, tmp_path):
    server.routes["/a"] = redirect("/b")
    server.routes["/b"] = redirect("/a")
    for i in range(10):
        server.routes[f"/r{i}"] = redirect(f"/r{i + 1}", status=301)
    with pytest.raises(RemoteVideoError, match=r"redirects in a loop \(back to .*/a\)"):
        fetch(server.url("/a"), tmp_path)
    with pytest.raises(RemoteVideoError, match="redirects more than 5 times"):
        fetch(server.url("/r0"), tmp_path)
    assert len([p for p, _ in server.seen if p.startswith("/r")]) == 6  # the link and 5 redirects


def test_network_errors_name_the_host_and_chain_the_cause(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        RemoteVideoError, match=f"127.0.0.1 refused the connection on port {port}"
    ) as err:
        fetch(f"http://127.0.0.1:{port}/clip.mp4", tmp_path)
    assert isinstance(err.value.__cause__, ConnectionRefusedError)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(
        RemoteVideoError, match="the host videos.example was not found .*Check the link"
    ):
        download_video("https://videos.example/clip.mp4", tmp_path, max_bytes=1 << 20)
    assert files_in(tmp_path) == []


def test_tls_errors_are_reported_and_tls_starts_on_the_checked_socket(server, tmp_path):
    server.routes["/clip.mp4"] = send(BODY, MP4)
    with pytest.raises(
        RemoteVideoError, match=r"TLS connection to 127.0.0.1 failed .*https:// or http://"
    ):
        fetch(f"https://127.0.0.1:{server.port}/clip.mp4", tmp_path)  # a plain HTTP server
    # HTTPSConnection.connect -> super().connect() -> checked
    mro = remote_connect.CheckedHTTPSConnection.__mro__
    assert mro.index(http.client.HTTPSConnection) < mro.index(remote_connect.CheckedHTTPConnection)
    assert mro.index(remote_connect.CheckedHTTPConnection) < mro.index(http.client.HTTPConnection)


def test_credentials_go_to_their_origin_only_and_are_never_shown(server, tmp_path, caplog):
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    def guarded(h: BaseHTTPRequestHandler) -> None:
        ok = h.headers.get("Authorization") == expected
        send(BODY if ok else b"", MP4, status=200 if ok else 401)(h)

    server.routes["/clip.mp4"] = guarded
    # another origin
    server.routes["/elsewhere"] = redirect(server.url("/clip.mp4", host="localhost"))
    caplog.set_level(logging.DEBUG)
    url = f"http://alice:s3cret@127.0.0.1:{server.port}"
    assert fetch(url + "/clip.mp4", tmp_path).read_bytes() == BODY
    with pytest.raises(RemoteVideoError, match="answered 401") as err:
        fetch(url + "/elsewhere", tmp_path)  # not sent on to localhost
    assert server.seen[-1][0] == "/clip.mp4" and "Authorization" not in server.seen[-1][1]
    with pytest.raises(RemoteVideoError) as missing:
        fetch(url + "/missing.mp4", tmp_path)
    with pytest.raises(RemoteVideoError) as invalid:
        fetch("https://alice:s3cret@[broken/clip.mp4", tmp_path)
    for text in (
        str(err.value),
        str(missing.value),
        str(invalid.value),
        caplog.text,
        repr(remote_links.parse_link(url)),
    ):
        assert "s3cret" not in text and "alice" not in text, text


# ------------------------------------------------------------------------------------------- SSRF
@pytest.fixture()
def no_connect(monkeypatch):
    """Fails the test if any socket tries to connect."""
    monkeypatch.setattr(
        socket.socket, "connect", lambda *a: pytest.fail(f"a connection was attempted: {a[1:]}")
    )


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::1]", "loopback"),
        ("10.0.0.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("[::ffff:127.0.0.1]", "IPv4 inside IPv6, loopback"),
        ("0.0.0.0", "unspecified"),
        ("2130706433", "loopback"),  # 127.0.0.1 written as one number
    ],
)
def test_addresses_inside_the_network_are_refused_before_connecting(
    host, kind, tmp_path, no_connect
):
    started = time.monotonic()
    with pytest.raises(
        RemoteVideoError, match=rf"is an address inside this server's network \({kind}\)"
    ):
        download_video(f"http://{host}:8000/latest/meta-data/", tmp_path, max_bytes=1 << 20)
    with pytest.raises(RemoteVideoError, match="inside this server's network"):
        download_video(f"https://{host}/clip.mp4", tmp_path, max_bytes=1 << 20)
    assert time.monotonic() - started < 1 and files_in(tmp_path) == []


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.2:{port}/x.mp4", "http://169.254.169.254/latest/", "http://[::1]:{port}/"],
)
def test_a_redirect_into_the_network_is_refused(server, tmp_path, target):
    """The first hop (127.0.0.1, standing in for a public host) is allowed; where it redirects is checked again."""
    server.routes["/public.mp4"] = redirect(target.format(port=server.port))
    first_only = ipaddress.ip_address("127.0.0.1")
    with pytest.raises(RemoteVideoError, match="inside this server's network"):
        download_video(
            server.url("/public.mp4"), tmp_path, max_bytes=1 << 20,
            address_allowed=lambda ip: ip == first_only or is_public_address(ip),
        )  # fmt: skip
    assert [p for p, _ in server.seen] == ["/public.mp4"] and files_in(tmp_path) == []


def test_the_address_actually_reached_is_checked_again(server, tmp_path):
    """As if DNS answered differently between the check and the connection: the peer is checked after connecting
    and before any request byte is sent."""
    calls = []
    with pytest.raises(RemoteVideoError, match="inside this server's network"):
        download_video(
            server.url("/clip.mp4"), tmp_path, max_bytes=1 << 20,
            address_allowed=lambda ip: calls.append(ip) or len(calls) == 1,  # resolved: yes; reached: no
        )  # fmt: skip
    assert [str(ip) for ip in calls] == ["127.0.0.1", "127.0.0.1"] and server.seen == []


def test_a_checked_connection_refuses_private_addresses_by_default(no_connect):
    for kind in (remote_connect.CheckedHTTPConnection, remote_connect.CheckedHTTPSConnection):
        with pytest.raises(RemoteVideoError, match="inside this server's network"):
            kind("127.0.0.1", 8000).connect()


def test_a_checked_connection_made_without_a_timeout_connects_as_http_client_does(server):
    """``http.client`` sets a connection made without ``timeout=`` to its placeholder object, which the checked
    socket passed to ``settimeout`` (TypeError: 'object' object cannot be interpreted as an integer)."""
    server.routes["/clip.mp4"] = send(BODY, MP4)
    connection = remote_connect.CheckedHTTPConnection("127.0.0.1", server.port)
    connection.address_allowed = None
    connection.request("GET", "/clip.mp4")
    assert connection.getresponse().read() == BODY
    assert connection.sock.gettimeout() is None
    connection.close()


def test_the_hubs_own_hosts_are_fetched_where_they_resolve_inside_the_network(
    server, tmp_path, monkeypatch
):
    """On a Space, huggingface.co and *.hf.co may resolve to Hugging Face's internal addresses (here: the test
    server's 127.0.0.1); those names are trusted, look-alikes are not."""
    server.routes["/d/clip.mp4"] = send(BODY, MP4)
    resolve = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, port, *a, **k: resolve("127.0.0.1", port, *a, **k)
    )
    for host in ("huggingface.co", "cdn-lfs.hf.co", "HF.CO."):
        (tmp_path / host).mkdir()
        path = fetch(
            f"http://{host}:{server.port}/d/clip.mp4", tmp_path / host, allow_private=False
        )
        assert path.read_bytes() == BODY
    (tmp_path / "x").mkdir()
    for host in ("nothf.co", "huggingface.co.example.com", "hf.com"):
        with pytest.raises(RemoteVideoError, match="inside this server's network"):
            fetch(f"http://{host}:{server.port}/d/clip.mp4", tmp_path / "x", allow_private=False)
    assert files_in(tmp_path / "x") == []


def test_is_public_address():
    public = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
    inside = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",
              "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1",
              "::ffff:10.0.0.1", "2002:a00:1::", "64:ff9b::a9fe:a9fe"]  # fmt: skip
    assert all(is_public_address(ipaddress.ip_address(a)) for a in public)
    assert not any(is_public_address(ipaddress.ip_address(a)) for a in inside)


# -------------------------------------------------------------------------------------- command line
def test_segment_takes_a_link_and_removes_its_download(
    server, tmp_path, tiny_sam_model, monkeypatch, capsys, weights_found
):
    """`uvosam segment http://.../clip.mp4` with tiny models: outputs named after the downloaded file, its
    temporary folder gone afterwards, after a failure too (the CLI allows private addresses: this is 127.0.0.1)."""
    video = moving_shapes(6, height=48, width=64, num_objects=2, seed=3)
    write_video(tmp_path / "src.mp4", video.frames, 8)
    server.routes["/share"] = send(
        (tmp_path / "src.mp4").read_bytes(),
        {**MP4, "Content-Disposition": 'attachment; filename="street cam.mp4"'},
    )  # fmt: skip
    made = []
    # where the download folder goes
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(
        segment_cli, "load_pipeline",
        lambda args: made.append(1) or UVOSAM(
            ReplayTracker(video.boxes_xyxy, lookahead=2), BoxPromptSegmenter(tiny_sam_model)
        ),
    )  # fmt: skip
    out = tmp_path / "out"
    assert uvosam_cli.main(["segment", server.url("/share"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("street_cam: 6 frames")
    assert (
        probe(out / "street_cam_overlay.mp4").num_frames == 6
        and (out / "street_cam_uvosam.zip").is_file()
    )
    assert list((tmp_path / "tmp").iterdir()) == []  # the download is gone
    assert (
        uvosam_cli.main(["segment", server.url("/missing.mp4"), "--out", str(tmp_path / "o2")]) == 2
    )
    assert "uvosam segment: error: 127.0.0.1 answered 404" in capsys.readouterr().err
    server.routes["/frames.zip"] = send(
        b"PK\x05\x06" + b"\0" * 18, {"Content-Type": "application/zip"}
    )
    assert (
        uvosam_cli.main(["segment", server.url("/frames.zip"), "--out", str(tmp_path / "o3")]) == 2
    )
    assert (
        "the link gave a zip (frames.zip); the command line reads a folder of frames"
        in capsys.readouterr().err
    )
    # failures: no model loaded, nothing left
    assert list((tmp_path / "tmp").iterdir()) == [] and made == [1]


def test_segment_of_a_link_finds_a_missing_sam_file_before_the_download(
    server, tmp_path, monkeypatch, capsys
):
    """With the default --sam vit_h missing, `segment <link>` downloaded the video and loaded the tracker, then said
    the SAM file was not found: both weight files are now looked for first."""
    from model_helpers import use_tiny_tracker

    asked = []
    server.routes["/clip.mp4"] = lambda h: asked.append(1) or send(b"never read", MP4)(h)
    # the tracker's file is there, SAM's is not
    use_tiny_tracker(tmp_path / "checkpoints", monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(segment_cli, "load_pipeline", lambda args: pytest.fail("models loaded"))
    code = uvosam_cli.main(["segment", server.url("/clip.mp4"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Weight file 'sam_vit_h_4b8939.pth'" in err and "was not found" in err, err
    assert asked == [] and not (tmp_path / "o").exists()


def test_segment_refuses_a_page_link_before_looking_for_weights(tmp_path, monkeypatch, capsys):
    """A YouTube page link was refused only after both weight files were looked for (downloaded, on a fresh
    install: ~3 GB for nothing); no weight is in reach here, so the old order said a weight file was missing."""
    import uvosam_cli

    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    args = ["segment", "https://www.youtube.com/watch?v=abc", "--out", str(tmp_path / "o")]
    assert uvosam_cli.main(args) == 2
    err = capsys.readouterr().err
    assert "is a youtube.com page link, not a video file" in err and "Weight file" not in err, err
