"""What the app registers on the extension: policies, the authorize callback, the seat rule.

The extension creates one :class:`Hooks` and hands it to the state of every app it is
initialized on, so a decorator applied before or after ``init_app`` reaches every app, and code
below the extension (listeners, checkout, the routes, the sync engine) reads the app's hooks from
its state instead of reaching back up into the extension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Request

from .counting import SeatRule
from .policies.registry import PolicyRegistry

AuthorizeCallback = Callable[[Request, Any, str], bool]


@dataclass
class Hooks:
    """``seat_rule`` and ``authorize`` are None until the app registers one."""

    policies: PolicyRegistry = field(default_factory=PolicyRegistry)
    authorize: AuthorizeCallback | None = None
    seat_rule: SeatRule | None = None
