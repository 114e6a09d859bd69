"""`manage.py run`: the whole desk in the foreground (what `make run` calls).

Starts the embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset (settings do
that on import), migrates, syncs the Beat schedule, ensures the operator account, seeds the
demo, then runs the Procfile (web + worker + beat + feeds, and the demo's localnet, NEAR
Intents and reference sandboxes) under the supervisor (config/supervisor.py: a process that
exits is restarted; one that keeps exiting stops them all, saying which and why). Ctrl-C stops
the processes, then the embedded services this command started."""

import os
import signal
import socket
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connections

from config import embedded
from config.supervisor import Supervisor, read_procfile

# The localnet's first demo trader (anvil's third dev account, funded with USDC when the localnet
# starts): the demo's treasury reads its USDC when nothing else names an Ostium account.
LOCALNET_DEMO_TRADER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


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
        parser.add_argument("--port", type=int, default=int(os.environ.get("TRADEDESK_PORT", "8000")))
        parser.add_argument("--no-seed", action="store_true")
        parser.add_argument("--check", action="store_true", help="prepare everything, then exit (no processes)")

    def handle(self, *args, port, no_seed, check, **options):
        self._ensure_database()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("sync_beat_schedule")
        call_command("ensure_operator")
        if not no_seed:
            call_command("seed_demo")
        if check:
            return
        try:
            port = _free_port(port)
            self.stdout.write(self.style.SUCCESS(f"admin:    http://127.0.0.1:{port}/admin/"))
            self.stdout.write(f"api docs: http://127.0.0.1:{port}/api/docs/   ready: http://127.0.0.1:{port}/ready")
            self._run_procfile(port)
        finally:
            connections.close_all()
            stopped = embedded.stop_started()
            if stopped:
                self.stdout.write(f"stopped embedded services: {', '.join(stopped)}")

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

    def _run_procfile(self, port: int) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.REDIS_URL,
            "PORT": str(port),
            # the Procfile's `python` is this interpreter (the project's venv)
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
            # the demo's paper venue follows the reference doubles when they run; else its walk
            "PAPER_FEED": os.environ.get("PAPER_FEED") or _demo_paper_feed(),
        }
        if settings.OSTIUM_NETWORK == "localnet" and not (
            settings.TREASURY_OSTIUM_ACCOUNTS or settings.OSTIUM_TRADER_KEY_FILE
        ):
            env["TREASURY_OSTIUM_ACCOUNTS"] = LOCALNET_DEMO_TRADER
        entries = read_procfile(Path(settings.BASE_DIR) / "Procfile")
        supervisor = Supervisor(entries, env=env, cwd=settings.BASE_DIR, out=self.stdout)
        signal.signal(signal.SIGINT, supervisor.request_stop)  # Ctrl-C, or a service manager's TERM
        signal.signal(signal.SIGTERM, supervisor.request_stop)
        if supervisor.run():
            raise CommandError("a process kept exiting; see the supervisor's message above")
