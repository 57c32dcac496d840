"""Links to download: an http(s) link parsed into where to connect and what to ask for, and the links refused
before any network access.

``parse_link`` refuses anything but an ``http``/``https`` link with a host (``file:``, ``ftp:``, ``data:``,
``javascript:``, a bare ``example.com/...``, a bad port or host name, control characters); ``refuse_page_link``
refuses links to video *pages* (YouTube, Vimeo, TikTok...: ``PAGE_HOSTS``) and their subdomains. Credentials in a
link (``user:pass@``) become an HTTP Basic ``Authorization`` header and are left out of ``Link.shown``, its repr and
every message. The download itself is ``uvosam.remote_video.download_video``.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from uvosam.errors import RemoteVideoError

__all__ = [
    "PAGE_HINT",
    "PAGE_HOSTS",
    "Link",
    "looks_like_link",
    "page_site",
    "parse_link",
    "refuse_page_link",
]

PAGE_HOSTS = (
    "youtube.com", "youtu.be", "youtube-nocookie.com", "vimeo.com", "dailymotion.com", "dai.ly", "tiktok.com",
    "instagram.com", "facebook.com", "fb.watch", "twitter.com", "x.com", "twitch.tv", "bilibili.com",
)  # fmt: skip
"""Sites whose links are pages that play a video, not the file: refused before any download (and their subdomains)."""
PAGE_HINT = (
    "use a direct link to the video file itself (.mp4, .webm, .mov...: a link that downloads or plays the bare "
    "file). YouTube and other video-site page links are not supported"
)
"""What to do instead, for every message that refuses a page (a page link, or a response that is a web page)."""


@dataclass(frozen=True)
class Link:
    """One http(s) link, parsed: where to connect and what to ask for.

    Attributes:
        url: the link as given (may hold credentials: never shown). scheme: "http" or "https".
        host: ASCII (IDNA) host name or IP literal, no brackets. port: explicit or the scheme's default.
        target: the request target (path and query, percent-encoded). shown: how messages name the link:
            ``scheme://host[:port]/path`` without credentials, a query shown as ``?…``.
        path: the URL's path, percent-decoded. auth: an ``Authorization`` header from ``user:pass@``, or None.
    """

    url: str = field(repr=False)
    scheme: str
    host: str
    port: int
    target: str
    shown: str
    path: str
    auth: str | None = field(default=None, repr=False)

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def _without_credentials(text: str) -> str:
    return re.sub(r"//[^/?#]*@", "//", text)


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def looks_like_link(text: str) -> bool:
    """True for ``scheme://...`` text (a link, maybe one ``download_video`` refuses), False for a file path."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text.strip()) is not None


def parse_link(url: str) -> Link:
    """``url`` as a ``Link``.

    Raises:
        RemoteVideoError: not an http(s) link with a host (file:, ftp:, data:, javascript:, no scheme...),
            control characters in it, a bad port or host name.
    """
    text = url.strip()
    example = "a direct link to a video file, e.g. https://example.com/clip.mp4"
    if not text:
        raise RemoteVideoError(f"No link given: expected {example}.")
    shown = _short(_without_credentials(text))
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise RemoteVideoError(f"{shown!r} has control characters in it: expected {example}.")
    try:
        parts = urlsplit(text)
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as err:
        raise RemoteVideoError(
            f"{shown!r} is not a valid link ({err}): expected {example}."
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        if scheme in ("http", "https"):
            raise RemoteVideoError(f"{shown!r} has no host: expected {example}.")
        # ftp://, file://, data:...: "add https:// in front of a bare address" did not fit; "example.com:8080/a"
        # and "localhost:8000/a" parse with a scheme too
        if scheme and "." not in scheme and not text[len(scheme) + 1 : len(scheme) + 2].isdigit():
            kind = f"{scheme}://" if text.lower().startswith(f"{scheme}://") else f"{scheme}:"
            raise RemoteVideoError(
                f"{shown!r}: only http:// and https:// links are fetched here, not {kind} ones; expected {example}."
            )
        raise RemoteVideoError(
            f"{shown!r} is not an http:// or https:// link: expected {example} (add https:// in front of "
            "a bare address)."
        )
    safe = "/%:@!$&'()*+,;=-._~"
    target = quote(parts.path or "/", safe=safe) + (
        f"?{quote(parts.query, safe=safe + '?')}" if parts.query else ""
    )
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode("ascii")
    return Link(
        url=text, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), target=target,
        shown=_short(f"{scheme}://{netloc}{parts.path}" + ("?…" if parts.query else "")),
        path=unquote(parts.path), auth=auth,
    )  # fmt: skip


def page_site(host: str) -> str | None:
    """The ``PAGE_HOSTS`` site ``host`` belongs to (the site or a subdomain), else None."""
    host = host.lower().rstrip(".")
    return next((site for site in PAGE_HOSTS if host == site or host.endswith("." + site)), None)


def refuse_page_link(link: Link) -> None:
    """Raise ``RemoteVideoError`` when ``link`` is on a ``PAGE_HOSTS`` site (a page that plays a video)."""
    site = page_site(link.host)
    if site is not None:
        raise RemoteVideoError(
            f"{link.shown} is a {site} page link, not a video file: {PAGE_HINT}."
        )
