#!/usr/bin/env python3
"""Two commands for a fresh machine: ``python3 tasks.py demo`` and ``python3 tasks.py test``.

Each sets up what it needs first (a virtual environment in ``.venv`` with the project and its
dev dependencies), so nothing has to be installed by hand beyond Python 3.10+.

- ``demo``: runs the demo app on http://127.0.0.1:5000 against the built-in Stripe stand-in.
- ``test``: runs the whole suite on SQLite, then again on PostgreSQL when one is reachable
  (``SEAT_BILLING_TEST_POSTGRES_URL``; with ``SEAT_BILLING_REQUIRE_POSTGRES=1`` it must be).
  Extra arguments go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/seat_billing_test"


def run(*args: str, env: dict[str, str] | None = None) -> int:
    return subprocess.call(list(args), cwd=ROOT, env={**os.environ, **(env or {})})


def ensure_environment() -> None:
    """Create .venv and install the project with its dev extras, again when pyproject changes."""
    if not PY.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("Installing flask-seat-billing and its dev dependencies into .venv ...", flush=True)
    code = run(str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "-e", ".[dev]")
    if code != 0:
        sys.exit(code)
    STAMP.write_text(digest)


def postgres_reachable(url: str) -> bool:
    """True when the server answers. The database named in ``url`` need not exist: each test
    run creates its own beside it (tests/run_database.py), so the maintenance database is asked."""
    probe = (
        "import sqlalchemy as sa, sys\n"
        f"e = sa.create_engine(sa.make_url({url!r}).set(database='postgres'))\n"
        "try:\n    e.connect().close()\nexcept Exception as x:\n    print(x); sys.exit(1)\n"
    )
    return subprocess.call([str(PY), "-c", probe], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) == 0


def test(args: list[str]) -> int:
    ensure_environment()
    pytest = [str(PY), "-m", "pytest", *args]
    print("== test suite on SQLite", flush=True)
    code = run(*pytest, env={"SEAT_BILLING_TEST_DATABASE": "sqlite"})
    url = os.environ.get("SEAT_BILLING_TEST_POSTGRES_URL", DEFAULT_PG)
    required = os.environ.get("SEAT_BILLING_REQUIRE_POSTGRES") == "1"
    if not postgres_reachable(url) and not required:
        print(f"== PostgreSQL not reachable at {url}: its run is skipped", flush=True)
        return code
    print("== test suite on PostgreSQL", flush=True)
    pg_code = run(*pytest, env={"SEAT_BILLING_TEST_DATABASE": "postgresql",
                                "SEAT_BILLING_TEST_POSTGRES_URL": url})
    return code or pg_code


def demo(args: list[str]) -> int:
    ensure_environment()
    flask = [str(PY), "-m", "flask", "--app", "demo_app"]
    code = run(*flask, "db", "upgrade", "--directory", "migrations")
    if code != 0:
        return code
    run(*flask, "seed-demo")
    return run(*flask, "run", "--port", os.environ.get("DEMO_PORT", "5000"), *args)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("test", "demo"):
        print(__doc__)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    return test(rest) if command == "test" else demo(rest)


if __name__ == "__main__":
    sys.exit(main())
