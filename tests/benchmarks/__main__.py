"""``python -m tests.benchmarks [NAME ...]``: run benchmarks and print Markdown tables."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("ingest", "sync", "tui")


def main(names: list[str]) -> int:
    for name in names or BENCHMARKS:
        if name not in BENCHMARKS:
            print(
                f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr
            )
            return 2
        print(f"running {name}…", file=sys.stderr)
        print("\n".join(importlib.import_module(f"tests.benchmarks.{name}").main()), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
