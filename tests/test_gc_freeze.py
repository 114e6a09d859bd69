"""The long-running processes freeze what they loaded at start (`config/gc_freeze.py`): a full
collection of the cyclic GC then visits only what was made since, instead of stalling the
process about 90 ms over Django's, web3's and the apps' objects."""

import gc
import os
import subprocess
import sys

from django.conf import settings


def test_the_web_process_freezes_what_it_loaded_with_its_urlconf():
    probe = "import gc, sys, config.asgi; print(gc.get_freeze_count(), 'trading.api.trading' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=settings.BASE_DIR, env=os.environ, capture_output=True, text=True, timeout=99
    )
    frozen, views = out.stdout.split()[-2:]
    assert int(frozen) > 50_000 and views == "True", out.stderr[-2000:]


def test_each_worker_child_freezes_what_it_inherited_once_forked():
    probe = (
        "import gc, django; django.setup(); import config.celery; from celery import signals; "
        "before = gc.get_freeze_count(); signals.worker_process_init.send(sender=None); "
        "print(before, gc.get_freeze_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=settings.BASE_DIR, env=os.environ, capture_output=True, text=True, timeout=99
    )
    before, after = out.stdout.split()[-2:]
    assert int(before) == 0 and int(after) > 50_000, out.stderr[-2000:]


def test_a_full_collection_after_the_freeze_visits_only_what_was_made_since():
    from config.gc_freeze import long_lived_freeze

    gc.unfreeze()
    try:
        frozen = long_lived_freeze()
        assert frozen > 10_000  # (a frozen object freed since leaves the count: no equality after)
        garbage = [[] for _ in range(10)]
        for a, b in zip(garbage, garbage[1:] + garbage[:1], strict=True):
            a.append(b)  # a cycle made after the freeze is still collected
        del garbage, a, b
        assert gc.collect() >= 10
    finally:
        gc.unfreeze()
