"""The ``flask seats`` click group: thin wrappers over the plain functions of this package.

Each command parses options, calls one function, prints its result, and maps failures to exit
codes: 0 fine, 1 drift or failing syncs (for monitoring), 2 the command could not run (unknown
organization, provider unreachable or refusing the keys, extension not set up) with a one-line
message instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from flask.cli import AppGroup

from ..errors import ProviderError, SeatBillingError
from ..state import SeatBillingState, get_state
from . import output
from .check_config import check_config
from .queue_status import queue_status
from .resync import resync
from .status import organization_status, sync_pending

F = TypeVar("F", bound=Callable[..., Any])
seats = AppGroup("seats", help="Per-seat billing: resync, status, pending syncs, configuration.")


class CommandFailed(click.ClickException):
    """Printed as ``Error: <message>`` with exit code 2, on one line (provider messages wrap)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _state() -> SeatBillingState:
    try:
        return get_state()
    except RuntimeError as error:
        raise CommandFailed(str(error)) from error


def guarded(fn: F) -> F:
    """Turn the extension's own errors into :class:`CommandFailed` (one line, exit 2)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProviderError as error:
            prefix = "provider rejected the credentials" if error.status in (401, 403) else (
                "provider unavailable")
            raise CommandFailed(f"{prefix}: {error.message}") from error
        except SeatBillingError as error:
            raise CommandFailed(str(error)) from error

    return wrapper  # type: ignore[return-value]


@seats.command("resync")
@click.option("--org", "orgs", multiple=True, help="Only this organization (repeatable).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--check", is_flag=True, help="Like --dry-run; exit 1 when any organization drifts.")
@click.option("--no-pull", is_flag=True, help="Skip the listing; use the local copy.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def resync_command(
    orgs: tuple[str, ...], dry_run: bool, check: bool, no_pull: bool, as_json: bool
) -> None:
    """Make every organization's provider seat quantity match its billable seats."""
    progress = output.Progress(enabled=None if not as_json else False)
    try:
        report = resync(_state(), organizations=orgs or None, dry_run=dry_run, check=check,
                        pull=not no_pull, progress=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(output.to_json(report.to_dict()))
    else:
        headers = ("organization", "plan", "status", "billable", "provider", "action")
        rows = [(r.organization, r.plan, r.status, r.billable, r.provider_seats,
                 r.action + (f" ({r.error})" if r.error else "")) for r in report.rows]
        click.echo(output.table(headers, rows))
        click.echo(report.summary())
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)


@seats.command("status")
@click.option("--org", "orgs", multiple=True, help="Only this organization (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def status_command(orgs: tuple[str, ...], as_json: bool) -> None:
    """Plan, status, billable and provider seats, pending syncs and the last seat change."""
    statuses = organization_status(_state(), orgs or None)
    if as_json:
        click.echo(output.to_json([_status_dict(s) for s in statuses]))
        return
    headers = ("organization", "plan", "status", "billable", "provider", "pending",
               "last error", "last change", "next period")
    click.echo(output.table(headers, [
        (s.organization, s.plan, s.status, _billable(s), s.provider_seats,
         f"{s.pending.status} x{s.pending.attempts}" if s.pending else None,
         s.pending.last_error if s.pending else None,
         _change(s.last_change), _decrease(s.decrease)) for s in statuses]))
    queue = queue_status(_state()) if not orgs else None
    if queue is not None:
        for line in queue.lines():
            click.echo(line)


@seats.command("sweep")
@guarded
def sweep_command() -> None:
    """Celery dispatch: publish every due outbox row and waiting webhook event now."""
    state = _state()
    if state.settings.dispatch != "celery":
        raise CommandFailed('sweep publishes Celery tasks; SEAT_BILLING_DISPATCH is "thread" '
                            "(use sync-pending)")
    from ..dispatch.celery_tasks import sweep

    syncs, events = sweep(state)
    click.echo(f"published {syncs} syncs, {events} webhook events")


def _billable(s: Any) -> Any:
    """``3 (editor 1, viewer 2)`` for a plan with seat types; the count alone otherwise."""
    if not s.billable_by_type:
        return s.billable
    parts = ", ".join(f"{k} {n}" for k, n in sorted(s.billable_by_type.items()))
    return f"{s.billable} ({parts})"


def _decrease(decrease: Any) -> str | None:
    """``3->2 from 2026-12-30 10:00``: seats now, seats from the renewal, and when it is."""
    if decrease is None:
        return None
    when = decrease.takes_effect_at
    at = f" from {when.strftime('%Y-%m-%d %H:%M')}" if when is not None else ""
    return f"{decrease.seats_now}->{decrease.seats_from_next_period}{at}"


def _change(change: Any) -> str | None:
    if change is None:
        return None
    when = change.created_at.strftime("%Y-%m-%d %H:%M")
    return f"{change.from_seats}->{change.to_seats} {change.reason} {when}"


def _status_dict(s: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(s)


@seats.command("sync-pending")
@guarded
def sync_pending_command() -> None:
    """Drain the outbox once (cron in manual mode); exit 1 if anything is still failing."""
    report = sync_pending(_state())
    for result in report.results:
        detail = f" ({result.error})" if result.error else ""
        click.echo(f"{result.organization_id}: {result.action}{detail}")
    for entry in report.failing:
        click.echo(f"still failing: {entry.organization_key} ({entry.status}, "
                   f"{entry.attempts} attempts): {entry.last_error}", err=True)
    synced = sum(1 for r in report.results if r.ok)
    click.echo(f"{synced} synced, {len(report.failing)} still failing")
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)


@seats.command("check-config")
@guarded
def check_config_command() -> None:
    """Check every configured price with the provider; exit 1 with a line per problem."""
    problems = check_config(_state())
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo("configuration ok")


@seats.command("policies")
@guarded
def policies_command() -> None:
    """Registered policies per hook, in the order they run."""
    state = _state()
    by_hook: dict[str, list[Any]] = {}
    for policy in state.hooks.policies.list():
        by_hook.setdefault(policy.hook, []).append(policy)
    for hook, policies in by_hook.items():
        click.echo(hook)
        for policy in policies:
            click.echo(f"  {policy.name}: {policy.description}")
    if not by_hook:
        click.echo("no policies registered")
