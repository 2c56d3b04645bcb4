"""Redirect targets: relative, or on the app's own host. Anything else is an open redirect."""

from __future__ import annotations

from urllib.parse import urljoin, urlparse


class UnsafeRedirect(ValueError):
    """A success or cancel URL pointing off the app's host."""


def absolute_same_host(url: str, host_url: str) -> str:
    """``url`` made absolute against ``host_url``; raises :class:`UnsafeRedirect` if off-host.

    Relative paths are accepted; absolute URLs must match the request's scheme and host exactly.
    Scheme-relative (``//evil.example``) and backslash tricks are refused.
    """
    candidate = url.strip()
    if not candidate or "\\" in candidate or any(ord(c) < 32 for c in candidate):
        raise UnsafeRedirect(f"{url!r} is not a valid redirect URL.")
    parsed = urlparse(candidate)
    base = urlparse(host_url)
    if parsed.scheme or parsed.netloc:
        if (parsed.scheme, parsed.netloc) != (base.scheme, base.netloc):
            raise UnsafeRedirect(
                f"{url!r} is not on this app's host ({base.netloc}); use a relative URL."
            )
        return candidate
    if candidate.startswith("//"):
        raise UnsafeRedirect(f"{url!r} is not on this app's host; use a relative URL.")
    return urljoin(host_url, candidate)
