"""Measure how far the seeded equivalence cases move with the CPU's vector unit and threads.

    python tests/tools/equivalence_spread.py            # all capabilities x {1, 2} threads

Runs every case of tests/_equivalence_cases.py in a fresh process for each ATen CPU capability
this CPU offers (`ATEN_CPU_CAPABILITY=default|avx2|avx512`: the kernels another x86-64 CPU would
pick) and each thread count, and also with another network batch (`batch_slices`), then writes
the largest difference of each case's volume and losses against the recorded reference and
between the runs to tests/data/pipeline_equivalence_spread.json (with the machine). The
tolerances of tests/test_pipeline_equivalence.py are derived from that file.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
OUT = TESTS / "data" / "pipeline_equivalence_spread.json"
RUN = """
import sys, numpy as np, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads({threads})
from _equivalence_cases import CASES, run_case
out = {{}}
for name in sorted(CASES):
    v, losses = run_case(name, batch_slices={batch})
    out[name] = np.asarray(v); out[name + ':loss'] = np.asarray(losses, dtype=np.float64)
out['_capability'] = np.array(torch.backends.cpu.get_cpu_capability())
np.savez({path!r}, **out)
"""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run(capability: str, threads: int, batch: int, tmp: Path) -> dict[str, np.ndarray]:
    path = tmp / f"{capability}-{threads}-{batch}.npz"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": str(threads)}
    code = RUN.format(tests=str(TESTS), threads=threads, batch=batch, path=str(path))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return dict(np.load(path))


def main() -> int:
    ref = dict(np.load(TESTS / "data" / "pipeline_equivalence.npz"))
    names = sorted(k for k in ref if ":" not in k)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cap, threads, batch in itertools.product(("default", "avx2", "avx512"), (1, 2), (4,)):
            r = run(cap, threads, batch, Path(tmp))
            runs[f"{r['_capability']}/{threads}t/b{batch}"] = r
        r = run("avx512", 1, 6, Path(tmp))  # another network batch: the kernels sum in another order
        runs[f"{r['_capability']}/1t/b6"] = r
    report = {"machine": cpu_model(), "torch": __import__("torch").__version__,
              "reference_made_on": "Intel Xeon (avx512_bf16), see pipeline_equivalence.npz",
              "runs": sorted(runs), "cases": {}}
    for name in names:
        vols = [ref[name]] + [r[name] for r in runs.values()]
        losses = [ref[name + ":loss"]] + [r[name + ":loss"] for r in runs.values()]
        dv = max(float(np.abs(a - b).max()) for a, b in itertools.combinations(vols, 2))
        dl = max(float((np.abs(a - b) / np.maximum(np.abs(b), 1e-12)).max())
                 for a, b in itertools.combinations(losses, 2))
        report["cases"][name] = {"volume_max_abs": dv, "loss_max_rel": dl}
        print(f"{name:10} volume {dv:.2e}  loss(rel) {dl:.2e}")
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
