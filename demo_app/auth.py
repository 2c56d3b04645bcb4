"""Signing in as one of the seeded users: a demo, so no passwords."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from .models import User, db

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])


def is_local_path(target: str) -> bool:
    """True for a path on this site. Browsers drop tabs and newlines from URLs and read ``\\``
    as ``/``, so ``/\t/evil.example`` is ``//evil.example``: refuse all three, and ``//``."""
    return (
        target.startswith("/") and not target.startswith("//") and "\\" not in target
        and not any(ord(c) < 33 or ord(c) == 127 for c in target)
    )


def current_user() -> User | None:
    if "_demo_user" not in g:
        user_id = session.get("user_id")
        g._demo_user = db.session.get(User, user_id) if user_id is not None else None
    user: User | None = g._demo_user
    return user


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("auth.sign_in", next=request.path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


@bp.app_context_processor
def inject_user() -> dict[str, Any]:
    return {"current_user": current_user()}


@bp.route("/signin", methods=["GET", "POST"])
def sign_in() -> Response | str:
    if request.method == "POST":
        user = db.session.execute(
            db.select(User).filter_by(email=request.form.get("email", "").strip().lower())
        ).scalar_one_or_none()
        if user is None:
            flash("No such user: pick one of the seeded users.", "error")
            return redirect(url_for("auth.sign_in"))
        session.clear()
        session["user_id"] = user.id
        target = request.form.get("next") or ""
        return redirect(target if is_local_path(target) else url_for("orgs.home"))
    users = db.session.execute(db.select(User).order_by(User.id)).scalars().all()
    return render_template("signin.html", users=users, next=request.args.get("next", ""))


@bp.post("/signout")
def sign_out() -> Response:
    session.clear()
    return redirect(url_for("auth.sign_in"))
