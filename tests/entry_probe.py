"""Run one process entry point the way the Procfile does (`entry_probe.py -m module args...` or
`entry_probe.py script args...`) and write the recursion limit that process runs with into the
file named by $ENTRY_PROBE_OUT, once Django is set up — after importing the libraries that
raise the limit when first imported, as a lazy import during the process's work would."""

import atexit
import os
import runpy
import sys
import threading
import time

OUT = os.environ["ENTRY_PROBE_OUT"]
_lock = threading.Lock()
_recorded = threading.Event()


def record() -> None:
    with _lock:
        apps = sys.modules.get("django.apps")
        registry = getattr(apps, "apps", None)  # None while django.apps is still being imported
        if _recorded.is_set() or registry is None or not registry.ready:
            return
        import eth  # noqa: F401
        import py_ecc  # noqa: F401

        with open(OUT, "w") as out:
            out.write(str(sys.getrecursionlimit()))
        _recorded.set()


def watch() -> None:
    while not _recorded.is_set():
        record()
        time.sleep(0.05)


atexit.register(record)
threading.Thread(target=watch, daemon=True).start()
args = sys.argv[1:]
if args[0] == "-m":
    sys.argv = [args[1], *args[2:]]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = args
    sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
    runpy.run_path(args[0], run_name="__main__")
