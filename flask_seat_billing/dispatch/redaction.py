"""Cut credentials out of text that may carry a connection URL (errors, log lines)."""

from __future__ import annotations

import re

# Up to the last '@' of the URL: a password may itself contain '@' or '/'.
_CREDENTIALS = re.compile(r"([\w+.-]+://)[^\s'\"]*@")


def redact(text: str) -> str:
    """``redis://:secret@host`` -> ``redis://***@host``: error messages may carry the URL."""
    return _CREDENTIALS.sub(r"\1***@", text)
