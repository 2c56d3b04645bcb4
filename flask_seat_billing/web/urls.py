"""Redirect targets: relative, or on a host the app named. Anything else is an open redirect.

The ``Host`` header is the client's to choose, so it never decides what is "the app's own host":
absolute URLs must be on a host listed in ``SEAT_BILLING_ALLOWED_REDIRECT_HOSTS``, Flask's
``TRUSTED_HOSTS`` or ``SERVER_NAME``. Relative URLs are always accepted, but the provider needs
an absolute one, and the base they are joined to must be trusted too: the request's own address
when its host is on that list (Flask has then checked it), else ``SERVER_NAME`` with
``PREFERRED_URL_SCHEME``. With nothing configured there is no trusted base, and the route answers
400 saying what to set instead of guessing from the Host header.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from flask import current_app, request
from werkzeug.sansio.utils import host_is_trusted

MAX_URL_LENGTH = 2048
WHAT_TO_SET = (
    "set SEAT_BILLING_ALLOWED_REDIRECT_HOSTS (or Flask's TRUSTED_HOSTS or SERVER_NAME) to the "
    "host names your pages are served on"
)


class UnsafeRedirect(ValueError):
    """A success, cancel or return URL that may not be used."""


class RedirectHostsNotConfigured(UnsafeRedirect):
    """The app named no host, so no absolute redirect URL can be trusted or built."""


def allowed_hosts(configured: Iterable[str]) -> list[str]:
    """``configured`` plus Flask's ``TRUSTED_HOSTS`` and ``SERVER_NAME`` of the current app."""
    config = current_app.config
    hosts = list(configured) + list(config.get("TRUSTED_HOSTS") or [])
    if config.get("SERVER_NAME"):
        hosts.append(str(config["SERVER_NAME"]))
    return hosts


def trusted_base(hosts: list[str]) -> str | None:
    """The absolute URL relative redirects are joined to, or None when none can be trusted."""
    if hosts and host_is_trusted(request.host, hosts):
        return request.host_url
    server_name = current_app.config.get("SERVER_NAME")
    if server_name:
        scheme = current_app.config.get("PREFERRED_URL_SCHEME") or "http"
        return f"{scheme}://{server_name}{request.script_root}/"
    return None


def safe_redirect(url: str, field: str, hosts: list[str], base: str | None) -> str:
    """``url`` as an absolute URL on an allowed host; raises :class:`UnsafeRedirect` otherwise.

    Messages name the field, never echo the value: they may reach a caller not yet authorized.
    Scheme-relative (``//evil.example``), user-info (``https://ok@evil.example``), backslash and
    control-character tricks are refused.
    """
    candidate = url.strip()
    if (
        not candidate or len(candidate) > MAX_URL_LENGTH or "\\" in candidate
        or any(ord(c) < 32 or ord(c) == 127 for c in candidate)
    ):
        raise UnsafeRedirect(f"{field} is not a valid redirect URL.")
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc or candidate.startswith("//"):
        if not hosts:
            raise RedirectHostsNotConfigured(
                f"{field} is an absolute URL, but no redirect host is configured: {WHAT_TO_SET}, "
                "or pass a relative URL."
            )
        try:
            hostname = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            hostname = None
        if (
            parts.scheme not in ("http", "https") or not hostname
            or parts.username is not None or parts.password is not None
            or not host_is_trusted(hostname, hosts)
        ):
            raise UnsafeRedirect(
                f"{field} must be a relative URL or on an allowed redirect host."
            )
        return candidate
    if base is None and hosts:
        raise UnsafeRedirect(
            f"{field} is relative, and this request's host is not an allowed redirect host."
        )
    if base is None:
        raise RedirectHostsNotConfigured(
            f"{field} is relative, and the app's own address is not configured, so it cannot be "
            f"made absolute for the billing provider: {WHAT_TO_SET}."
        )
    return urljoin(base, candidate)
