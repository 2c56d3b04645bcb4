"""Reading one configuration value with an error that names its key.

Shared by the core settings and each provider's own settings (``providers/<name>/settings.py``),
which is why it sits at the bottom of the package: a provider folder may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigurationError

Config = Mapping[str, Any]


def is_loopback_url(url: str | None) -> bool:
    """True for a stand-in on this machine, which needs no real credentials."""
    if not url:
        return False
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def choice(config: Config, key: str, allowed: tuple[str, ...]) -> str:
    """The value of ``key`` if it is one of ``allowed``."""
    value = config[key]
    if value not in allowed:
        raise ConfigurationError(f"{key} is {value!r}; expected one of {', '.join(allowed)}.")
    return str(value)


def non_negative(config: Config, key: str, kind: type = int) -> Any:
    """The value of ``key`` as ``kind`` if it is a number >= 0 (a bool is not a number here)."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigurationError(f"{key} must be a non-negative number, got {value!r}.")
    return kind(value)
