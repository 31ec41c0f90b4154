"""The one rule for where the browser may be sent after signing in: a path on this site, nothing else.

Used for the ``next`` parameter of the sign-in pages (set by us when a signed-out visitor
opens a page, but sent by anyone), for the page a form came from (the Referer), and for
nothing else. A browser reads ``Location`` generously (WHATWG URL): it drops tabs and
newlines, reads a backslash as a slash, and takes ``//host`` as another site, so
``/%09/evil.example`` arrives as ``//evil.example``. Hence a whitelist, checked on the
value and on its percent-decoding: printable ASCII without spaces or backslashes, one
leading slash, no scheme, no host.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import request

MAX_LENGTH = 2000
DECODINGS = 3  # %25 hides one encoding in another: %2509 -> %09 -> tab


def safe_next_path(target: str | None) -> str | None:
    """``target`` when it is a path on this site to go to (``/classes/3?since=2026-09-01``), else None.

    An absolute URL of this very site (a Referer) is taken as its path. Refused: other sites, any
    scheme (``javascript:``), protocol-relative ``//host`` and ``/\\host``, backslashes, control
    characters, whitespace and non-ASCII (raw or percent-encoded), and anything over 2000 characters."""
    if not target or len(target) > MAX_LENGTH:
        return None
    own = request.host_url  # "http://host/": a Referer from this site
    if target.startswith(own):
        target = "/" + target[len(own) :]
    decoded = target
    for _ in range(DECODINGS):
        decoded = unquote(decoded)
    for text in (target, decoded):
        if not text.startswith("/") or text.startswith(("//", "/\\")):
            return None
        if "\\" in text or any(not "!" <= char <= "~" for char in text):
            return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target
