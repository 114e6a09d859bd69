import importlib
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    chosen = argv or names
    unknown = set(chosen) - set(names)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; available: {', '.join(names)}")
        return 2
    if len(chosen) > 1:
        # Each in a process of its own: Django reads its settings once per process, and what one
        # benchmark sets up (the bench database's name, settings it points at a localnet) must
        # not leak into the next. One failing does not stop the others.
        failed = [name for name in chosen if subprocess.run([sys.executable, "-m", "bench", name]).returncode]
        if failed:
            print(f"\nfailed: {', '.join(failed)}")
        return 1 if failed else 0
    # Before the benchmark sets Django up: its tasks and channel messages never reach a running
    # deployment's worker or websockets.
    os.environ.setdefault("CELERY_QUEUE", "tradedesk-bench")
    os.environ["CHANNELS_PREFIX"] = "td-bench-asgi"
    name = chosen[0]
    print(f"\n=== bench.{name}", flush=True)
    started = time.monotonic()
    importlib.import_module(f"bench.{name}").main()
    print(f"=== bench.{name} done in {time.monotonic() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
