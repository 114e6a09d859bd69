"""`manage.py run`: the whole desk in the foreground (what `make run` calls).

Starts the embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset (settings do
that on import), migrates, syncs the Beat schedule, ensures the operator account, seeds the
demo, then runs the Procfile (web + worker + beat + feeds, and the demo's Ostium localnet, NEAR
Intents and reference sandboxes) under the supervisor (config/supervisor.py: a process that
exits is restarted; one that keeps exiting stops them all, saying which and why). Ctrl-C stops
the processes, then the embedded services this command started.

On the Ostium localnet (OSTIUM_NETWORK=localnet) the demo can trade Ostium with no other step
than routing a symbol and arming `executor:ostium`: the desk's trader key (a key file next to the
localnet config, made once, used when OSTIUM_TRADER_KEY_FILE is unset), the delegate and the
relayer keys exist, and the localnet funds the three (USDC, and ETH for gas) when it starts (the
treasury's Ostium inventory is that trader's). The previous run's localnet config is removed
first, so no process reads a dead localnet. Never on testnet or mainnet."""

import contextlib
import io
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connections

from config import embedded, metrics
from config.supervisor import Supervisor, read_procfile
from providers.ostium.config import localnet_config_path
from providers.sandbox_config import project_path


def _stale_sandbox_configs(*, ostium: bool) -> list[Path]:
    """The address files the last run's doubles wrote: their processes are gone, and a process that
    read one first (the solver, the feeds) would knock on a dead port. Removed before the processes
    start, each reader waits for this run's."""
    names = [settings.NEAR_INTENTS_SANDBOX_CONFIG, settings.REFERENCE_SANDBOX_CONFIG, settings.LIFI_SANDBOX_CONFIG]
    return [project_path(name) for name in names] + ([localnet_config_path()] if ostium else [])


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def _demo_paper_feed() -> str:
    return "reference" if settings.REFERENCE_ENDPOINTS == "sandbox" else "walk"


class Command(BaseCommand):
    help = "Run web + worker + beat + feeds in the foreground, with the embedded services by default."

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("PORT") or os.environ.get("TRADEDESK_PORT") or "8000")
        )
        parser.add_argument("--no-seed", action="store_true")
        parser.add_argument("--check", action="store_true", help="prepare everything, then exit (no processes)")

    def handle(self, *args, port, no_seed, check, **options):
        self._ensure_database()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("sync_beat_schedule")
        login = io.StringIO()
        call_command("ensure_operator", stdout=login)  # printed last, once the desk answers
        if not no_seed:
            call_command("seed_demo")
        ostium = self._ostium_localnet_accounts()
        if check:
            self.stdout.write(login.getvalue().strip())
            return
        for stale in _stale_sandbox_configs(ostium=bool(ostium)):
            stale.unlink(missing_ok=True)
        try:
            port = _free_port(port)
            self.stdout.write(f"starting the desk on port {port} (another: make run PORT=8001) …")
            threading.Thread(
                target=self._announce_when_ready, args=(port, login.getvalue().strip(), not no_seed), daemon=True
            ).start()
            self._run_procfile(port, ostium)
        finally:
            connections.close_all()
            stopped = embedded.stop_started()
            if stopped:
                self.stdout.write(f"stopped embedded services: {', '.join(stopped)}")

    def _announce_when_ready(self, port: int, login: str, demo: bool, timeout: float = 300.0) -> None:
        """Once /ready answers 200 (database, Redis, a Celery worker, the channel layer), place
        the demo's first trades (`trading/demo.py`; the demo user's first run only), then print
        where to go and how to log in: the last lines of a normal start, after the processes'
        own start-up output."""
        import time
        import urllib.request

        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # not up yet (refused, 503): ask again
            with contextlib.suppress(Exception), urllib.request.urlopen(f"{base}/ready", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    break
            time.sleep(1)
        else:
            self.stdout.write(f"the desk did not report ready within {timeout:.0f} s: see {base}/ready")
            return
        placed = ""
        if demo:
            from django.db import connection

            from trading.demo import demo_trades_place

            try:
                placed = demo_trades_place()
            except Exception as exc:  # the banner (and its once-shown login) is printed whatever happens here
                placed = f"demo trades: failed ({type(exc).__name__}: {exc})"
            finally:
                connection.close()  # this thread's
        rule = "─" * 72
        lines = [
            rule,
            "Tradedesk is up.",
            f"  admin (control panel): {base}/admin/",
            f"  {login}" if login else "",
            f"  API docs (Swagger):    {base}/api/docs/",
            f"  {placed}" if placed else "",
            "  Ctrl-C stops everything.",
            rule,
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(line for line in lines if line)))

    def _ensure_database(self) -> None:
        """DATABASE_URL may name a database the server does not have yet: create it (through
        the server's `postgres` database) rather than fail on a fresh server."""
        try:
            connections["default"].ensure_connection()
            return
        except OperationalError as missing:
            import psycopg
            from psycopg import sql

            db = settings.DATABASES["default"]
            params = {
                "user": db.get("USER"),
                "password": db.get("PASSWORD"),
                "host": db.get("HOST"),
                "port": db.get("PORT"),
            }
            try:
                with psycopg.connect(
                    dbname="postgres", autocommit=True, **{k: v for k, v in params.items() if v}
                ) as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
                        raise missing  # it exists: the failure was something else
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
            except psycopg.Error:
                raise missing from None
            self.stdout.write(f"created database {db['NAME']}")

    def _ostium_localnet_accounts(self) -> dict[str, str]:
        """The environment giving the desk funded Ostium accounts on the localnet (nothing on
        testnet or mainnet): a trader key file (made once), the delegate and relayer keys, and
        the addresses the localnet funds when it starts."""
        if str(settings.OSTIUM_NETWORK).lower() != "localnet":
            return {}
        from eth_account import Account

        from delegations.keys import custody_keys_ensure

        config = localnet_config_path()
        env = {}
        key_file = settings.OSTIUM_TRADER_KEY_FILE
        if not key_file:
            key_file = str(config.with_name("ostium-demo-trader.key"))
            path = Path(key_file)
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(Account.create().key.hex() + "\n", encoding="utf-8")
                path.chmod(0o600)
            env["OSTIUM_TRADER_KEY_FILE"] = key_file
        key = Path(key_file).read_text(encoding="utf-8").strip()
        funded = [Account.from_key(key if key.startswith("0x") else "0x" + key).address]
        funded += custody_keys_ensure(network="localnet", actor="run")
        env["OSTIUM_LOCALNET_FUND"] = ",".join([*settings.OSTIUM_LOCALNET_FUND, *funded])
        self.stdout.write(f"ostium localnet: trader, relayer and delegate funded on start: {', '.join(funded)}")
        return env

    def _metrics_dir(self) -> str:
        """PROMETHEUS_MULTIPROC_DIR (default .var/prometheus), emptied before the processes start:
        the previous run's files would be summed in."""
        directory = os.environ.get(metrics.MULTIPROC_ENV) or str(Path(settings.BASE_DIR) / ".var" / "prometheus")
        metrics.wipe(directory)
        return directory

    def _run_procfile(self, port: int, extra_env: dict[str, str]) -> None:
        env = {
            **os.environ,
            **extra_env,
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.REDIS_URL,
            "PORT": str(port),
            # the Procfile's `python` is this interpreter (the project's venv)
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
            # the demo's paper venue follows the reference doubles when they run; else its walk
            "PAPER_FEED": os.environ.get("PAPER_FEED") or _demo_paper_feed(),
            # every process writes its metrics here; /metrics sums them (config/metrics.py)
            metrics.MULTIPROC_ENV: self._metrics_dir(),
        }
        entries = read_procfile(Path(settings.BASE_DIR) / "Procfile")
        supervisor = Supervisor(entries, env=env, cwd=settings.BASE_DIR, out=self.stdout)
        signal.signal(signal.SIGINT, supervisor.request_stop)  # Ctrl-C, or a service manager's TERM
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        if supervisor.run():
            raise CommandError("a process kept exiting; see the supervisor's message above")
