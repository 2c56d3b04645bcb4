"""A PostgreSQL server of a test's own, which the test may crash: ``initdb`` in a temporary
directory, ``postgres`` listening on a Unix socket there, killed with SIGKILL on demand.

The shared server of the test run cannot be crashed, and a crash of the server (not of the app)
is what decides whether a commit that did not wait for the disk survives. Killing every process
of the server at once loses what sat in its WAL buffers and was never written: exactly what
``synchronous_commit = off`` risks. The WAL writer is stopped (SIGSTOP) by :meth:`hold_wal`, and
the background writer, autovacuum and timed checkpoints are off, so nothing flushes the WAL
behind the test's back: only synchronous commits do.

PostgreSQL's server programs come with the server package ``.ci/run`` installs; ``initdb``
refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

SETTINGS = {
    "listen_addresses": "",
    "fsync": "on",
    "synchronous_commit": "on",
    "autovacuum": "off",
    "bgwriter_lru_maxpages": "0",
    "checkpoint_timeout": "1h",
    "wal_writer_delay": "10s",
    "max_connections": "20",
    "shared_buffers": "16MB",
}


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not versions:
        raise RuntimeError("PostgreSQL's server programs (initdb, postgres) are not installed; "
                           "install the postgresql package (.ci/run does)")
    return Path(versions[-1]).parent


def _children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (name) state ppid ...": the name may hold spaces, so split after its ")"
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that still runs: a zombie (dead, not reaped, as under an
    init that never reaps) has let go of its shared memory and its lock file's claim."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int]) -> None:
    """Until none of ``pids`` runs, as the restarted postmaster's checks need."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = [pid for pid in pids if _running(pid)]
        if not pids:
            return
        time.sleep(0.02)
    raise RuntimeError(f"processes of the private PostgreSQL server outlived SIGKILL: {pids}")


class PrivatePostgres:
    """``start()``, ``url``, ``hold_wal()``, ``crash()``, ``start()`` again (crash recovery),
    ``close()``."""

    def __init__(self) -> None:
        self.bin = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="fsb-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        self.process: subprocess.Popen[bytes] | None = None
        try:
            if self._as_postgres:
                shutil.chown(self.dir, "postgres")
            self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                       "-U", "postgres", "--no-sync"], check=True)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/postgres?host={self.dir}"

    def _command(self, args: list[str]) -> list[str]:
        return (["runuser", "-u", "postgres", "--", *args] if self._as_postgres else args)

    def _run(self, args: list[str], check: bool) -> None:
        subprocess.run(self._command(args), capture_output=True, check=check)

    def start(self) -> PrivatePostgres:
        options = [f"-c{name}={value}" for name, value in SETTINGS.items()]
        with open(self.dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                self._command([str(self.bin / "postgres"), "-D", str(self.data),
                               f"-cunix_socket_directories={self.dir}", *options]),
                stdout=log, stderr=log, start_new_session=True)
        engine = sa.create_engine(self.url)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text("SELECT 1"))
                    return self
                except sa.exc.OperationalError as error:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise RuntimeError("the private PostgreSQL server did not start: "
                                           + (self.dir / "server.log").read_text()[-2000:]
                                           ) from error
                    time.sleep(0.05)
        finally:
            engine.dispose()

    def hold_wal(self) -> None:
        """Stop the WAL writer: from now on only a synchronous commit flushes the WAL."""
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                pid = conn.execute(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")).scalar()
        finally:
            engine.dispose()
        assert pid is not None, "no WAL writer found"
        os.kill(int(pid), signal.SIGSTOP)

    def _postmaster(self) -> int | None:
        """The running postmaster's pid, found from the process this object started (never
        from the data directory's lock file, which a dead server leaves behind)."""
        if self.process is None or self.process.poll() is not None:
            return None
        if not self._as_postgres:
            return self.process.pid
        found = _children(self.process.pid)  # runuser's one child
        return found[0] if found else None

    def crash(self) -> None:
        """Kill every process of the server with SIGKILL: a power cut, as far as the server's
        memory goes (what it had written to files stays in the OS's cache). The postmaster's
        children run in sessions of their own, so each is killed by its pid. (Not stopped
        first: ``runuser`` stops itself when its child stops. The test forks no backend
        while it crashes the server.)"""
        assert self.process is not None
        postmaster = self._postmaster()
        children: list[int] = []
        if postmaster is not None:
            children = _children(postmaster)  # before it dies: then they belong to init
            os.kill(postmaster, signal.SIGKILL)  # first: it starts no new child once dead
            for pid in children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.process.wait(timeout=30)
        self.process = None
        _wait_gone([pid for pid in (postmaster, *children) if pid is not None])

    def close(self) -> None:
        """Stop the server and remove its directory. A fast shutdown (SIGINT) rather than a
        crash: a killed server leaves its shared memory segment behind."""
        try:
            postmaster = self._postmaster()
            if postmaster is not None:
                assert self.process is not None
                children = _children(postmaster)
                for pid in children:
                    try:
                        os.kill(pid, signal.SIGCONT)  # a held WAL writer must run to stop
                    except ProcessLookupError:
                        pass
                os.kill(postmaster, signal.SIGINT)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.crash()
                _wait_gone([postmaster, *children])
            elif self.process is not None:
                self.process.wait(timeout=30)
            self.process = None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
