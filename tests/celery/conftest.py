"""Fixtures for Celery dispatch: a real Redis broker and real ``celery worker`` processes.

Redis is ``SEAT_BILLING_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Without it the
tests skip, or fail when ``SEAT_BILLING_REQUIRE_REDIS=1`` (CI). Nothing here is eager mode or an
in-memory broker: the test process publishes through Redis, and worker processes started with
``python -m celery -A tests.celery.worker_app worker`` consume. SQLite runs use a file database
(``database_url``), which the workers open too; PostgreSQL runs use the run's database.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.apps import AppUnderTest
from tests.celery.support import app_config, celery_app
from tests.conftest import AppFactory, app_factory

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def reachable_redis(url: str) -> str:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as error:
        if os.environ.get("SEAT_BILLING_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required but unreachable at {url}: {error}")
        pytest.skip(f"Redis unreachable at {url}: {error}")
    return url


@pytest.fixture
def redis_url() -> str:
    return reachable_redis(os.environ.get("SEAT_BILLING_TEST_REDIS_URL", DEFAULT_REDIS))


@pytest.fixture
def tag() -> str:
    """This test's slice of Redis: queue, key prefix and app id."""
    return f"fsbtest_{os.getpid()}_{secrets.token_hex(4)}"


@dataclass
class Cluster:
    """The test's Celery app, its Flask app(s) and the worker processes it started."""

    broker: str
    tag: str
    database_url: str
    stripe_url: str
    logs: Path
    config: dict[str, Any] = field(default_factory=dict)
    products: str | None = None  # repr() of the app's products, when not tests/apps.py's
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    celery: Any = None

    def start_worker(self, *, beat: bool = False, wait: bool = True) -> subprocess.Popen[bytes]:
        """One ``celery worker`` process (solo pool: the task runs in the process itself, so a
        SIGKILL of it kills the task); ``beat`` embeds the beat scheduler (the sweep)."""
        n = len(self.workers)
        spec = {"broker": self.broker, "tag": self.tag, "database_url": self.database_url,
                "stripe_url": self.stripe_url, "config": self.config,
                "products": self.products}
        log = self.logs / f"worker{n}.log"
        command = [sys.executable, "-m", "celery", "-A", "tests.celery.worker_app", "worker",
                   "-P", "solo", "-Q", self.tag, "-n", f"w{n}-{self.tag}@%h", "-l", "INFO",
                   "--without-gossip", "--without-mingle", "--without-heartbeat",
                   "--prefetch-multiplier", "1"]
        if beat:
            command += ["-B", "-s", str(self.logs / f"beat{n}")]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "FSB_CELERY_WORKER": json.dumps(spec)},
            )
        self.workers.append(process)
        if wait:
            self.wait_ready(n)
        return process

    def log_of(self, n: int) -> str:
        path = self.logs / f"worker{n % max(1, len(self.workers))}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_of(n):
                return
            if self.workers[n].poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"celery worker {n} did not start:\n{self.log_of(n)[-3000:]}")

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)

    def tasks_run(self, n: int) -> int:
        """Tasks worker ``n`` finished, as its log says."""
        return self.log_of(n).count(" succeeded in ")


def forget(url: str, tag: str) -> None:
    """Delete every key of this test's slice of Redis (broker and markers alike)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        keys = list(client.scan_iter(match=f"{tag}*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass


@pytest.fixture
def cluster(
    redis_url: str, tag: str, database_url: str, stripe: Any, tmp_path: Path
) -> Iterator[Cluster]:
    c = Cluster(redis_url, tag, database_url, stripe.url, tmp_path)
    try:
        yield c
    finally:
        c.stop()
        forget(redis_url, tag)


@pytest.fixture
def make_celery_app(cluster: Cluster) -> Iterator[AppFactory]:
    """Build the web side: apps in Celery dispatch, publishing to the test's Celery app.

    The config given to the first app is what the workers build too (``cluster.config``).
    """
    base = {"SEAT_BILLING_STRIPE_API_BASE": cluster.stripe_url}
    with app_factory(cluster.database_url, base) as build:
        def factory(config: dict[str, Any] | None = None, **options: Any) -> AppUnderTest:
            merged = app_config(cluster.tag, **(config or {}))
            if not cluster.config:
                cluster.config = merged
            t = build(merged, **options)
            if cluster.celery is None:
                cluster.celery = celery_app(cluster.broker, cluster.tag)
            t.billing.use_celery(cluster.celery, t.app)
            return t

        yield factory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server of the test's own (no persistence), to stop and restart at will."""

    port: int
    password: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("SEAT_BILLING_REQUIRE_REDIS") == "1":
                pytest.fail("redis-server is required but not installed")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--requirepass", self.password, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_redis(redis_url: str, tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(), "pw-" + secrets.token_hex(8), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
