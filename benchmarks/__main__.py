"""python -m benchmarks [scale [SIZES]] [starters [N]]   (./dev bench ...)

Without arguments: everything (sizes 10,100,1000; 50 starters). Prints markdown tables.
"""

from __future__ import annotations

import platform
import sys

from . import scale, starters


def main(argv: list[str]) -> int:
    what = argv[:1] or ["all"]
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{__import__('os').cpu_count()} cpus\n"
    )
    if what[0] in ("all", "scale"):
        sizes = (
            [int(s) for s in argv[1].split(",")] if what[0] == "scale" and len(argv) > 1 else [10, 100, 1000]
        )
        print("Scale (ours / floor, best of runs):\n")
        print(scale.run(sizes), "\n", flush=True)
    if what[0] in ("all", "starters"):
        count = int(argv[1]) if what[0] == "starters" and len(argv) > 1 else 50
        print(f"Concurrent starters ({count} CLI processes at once):\n")
        print(starters.run(count), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
