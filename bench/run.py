"""Run every benchmark in bench/ (bench_*.py) and print a table: `make bench`.

`make bench ARGS=name` runs only the benchmarks whose module name contains `name`.
"""

import importlib
import platform
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))


def main(selected: list[str]) -> int:
    modules = sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))
    if selected:
        modules = [name for name in modules if any(part in name for part in selected)]
    if not modules:
        print("No benchmark matches.")
        return 1
    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    print(f"{'benchmark':<48} {'n':>6} {'p50 ms':>9} {'p95 ms':>9}  note")
    for name in modules:
        module = importlib.import_module(f"bench.{name}")
        for result in module.run():
            figures = f"{result.samples:>6} {result.p50_ms:>9.3f} {result.p95_ms:>9.3f}"
            print(f"{result.name:<48} {figures}  {result.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
