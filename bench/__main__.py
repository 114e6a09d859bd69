import importlib
import os
import pkgutil
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
    # Before any benchmark sets Django up (settings are read once per process): their tasks and
    # channel messages never reach a running deployment's worker or websockets.
    os.environ.setdefault("CELERY_QUEUE", "tradedesk-bench")
    os.environ["CHANNELS_PREFIX"] = "td-bench-asgi"
    for name in chosen:
        print(f"\n=== bench.{name}")
        started = time.monotonic()
        importlib.import_module(f"bench.{name}").main()
        print(f"=== bench.{name} done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
