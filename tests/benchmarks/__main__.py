"""``python -m tests.benchmarks [NAME ...] [--OPTION ...]``: run benchmarks and print Markdown
tables. Options go to the one benchmark named (``scale --quick``); without a name, every benchmark
but ``scale`` runs (it takes a while: run it by name)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("ingest", "sync", "tui", "scale", "checkpoint")
DEFAULT = ("ingest", "sync", "tui")


def main(argv: list[str]) -> int:
    first_option = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, options = argv[:first_option], argv[first_option:]
    if options and len(names) != 1:
        print("options go to one benchmark: name it first (scale --quick)", file=sys.stderr)
        return 2
    for name in names or DEFAULT:
        if name not in BENCHMARKS:
            print(
                f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr
            )
            return 2
        print(f"running {name}…", file=sys.stderr)
        module = importlib.import_module(f"tests.benchmarks.{name}")
        lines = module.main(options) if options else module.main()
        print("\n".join(lines), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
