"""In-process benchmarks run against `<project database>_bench` (created and migrated if
missing, kept between runs), never the project's own data; the connection points back at the
project database afterwards, for the benchmarks that run after."""

from __future__ import annotations

import os


def bench_database() -> str:
    """Set Django up on the bench database; returns the project database's name."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    name = settings.DATABASES["default"]["NAME"]
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"{name}_bench"
    # not serialized: that copy of every row (for tests' serialized rollback) is nothing a bench
    # uses, and it took most of a run's set-up as the kept database grew
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True, serialize=False)
    return name


def bench_database_restore(name: str) -> None:
    from django.db import connection

    connection.creation.destroy_test_db(name, verbosity=0, keepdb=True)


def on_bench_database(run) -> None:
    """Call `run()` with Django set up on the bench database, then point back at the project's."""
    name = bench_database()
    try:
        run()
    finally:
        bench_database_restore(name)
