"""All benchmarks with one command: quality, speed, then solvers.

    python -m benchmarks.run_all --quick         # smoke run of all three (minutes)
    python -m benchmarks.run_all                 # the full run (see RESULTS.md for its cost)

Each script runs in its own process (so one's memory does not hide the next one's peak) with
the same --threads; options after `--` go to every script (e.g. `-- --volume heldout-epi`).
Results: benchmarks/results.json, RESULTS.md and solvers.md, each section stating the machine
and the exact command (the script's, and this one's).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("quality", "speed", "solvers")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the smoke mode of every script")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--only", default=",".join(SCRIPTS),
                    help=f"comma list of {', '.join(SCRIPTS)}")
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- options passed to every script")
    args = ap.parse_args(argv)
    rest = [a for a in args.rest if a != "--"]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SCRIPTS]
    if bad:
        ap.error(f"unknown script(s) {bad}; choose from {SCRIPTS}")
    me = shlex.join(["python", "-m", "benchmarks.run_all",
                     *(argv if argv is not None else sys.argv[1:])])
    env = {**os.environ, "D3IP_BENCH_PARENT": me}
    failures = []
    t_all = time.perf_counter()
    for name in only:
        cmd = [sys.executable, "-m", f"benchmarks.{name}", "--threads", str(args.threads),
               "--out-dir", str(args.out_dir), *(["--quick"] if args.quick else []), *rest]
        print(f"== {name}: {shlex.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=env, cwd=HERE.parent)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failures.append(name)
    print(f"== all done in {(time.perf_counter() - t_all) / 60:.1f} min"
          + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
