"""Time and memory of reading a fastMRI-size multi-coil file: k-space (slices, 15 coils, 640,
368) as the knee files, a test-style file (fastMRI random 4x mask, centre fraction 0.08) with
1 % noise, written by the test writer (tests/_format_writers.py) into a temporary folder.

Reading = `open_measurement`: the HDF5 read, the readout oversampling crop (640 -> 320), ESPIRiT
coil maps from the ACS block per slice, the image phase (CG-SENSE, 8 steps) folded into the
maps. It runs in a fresh child process with one thread (OMP_NUM_THREADS=1,
torch.set_num_threads(1)), so its peak resident memory (ru_maxrss) is the read's alone; it is
compared with what `d3ip inspect` claims a run needs (`memory_bytes`). Writes
benchmarks/read_fastmri.md.

    OMP_NUM_THREADS=1 python -m benchmarks.read_fastmri [--slices 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROWS, COLS, COILS = 320, 368, 15


def _phantom(slices: int) -> np.ndarray:
    """(slices, 320, 368) ellipses in [0, 1], a little different per slice."""
    yy, xx = np.mgrid[:ROWS, :COLS].astype(np.float32)
    yy, xx = (yy - ROWS / 2) / (ROWS / 2), (xx - COLS / 2) / (COLS / 2)
    vol = np.zeros((slices, ROWS, COLS), np.float32)
    for s in range(slices):
        vol[s][(xx / 0.8) ** 2 + (yy / 0.9) ** 2 <= 1] = 0.5
        vol[s][((xx + 0.3) / 0.2) ** 2 + ((yy - 0.2) / 0.3) ** 2 <= 1] = 1.0
        vol[s][((xx - 0.35) / 0.15) ** 2 + ((yy + 0.1 * s) / 0.2) ** 2 <= 1] = 0.2
    return vol


def write_file(path: Path, slices: int) -> Path:
    import importlib.util

    from napari_d3ip.io.formats._mri import fastmri_mask

    # the tests' fastMRI writer (the file layout of the public spec), loaded by its path
    spec = importlib.util.spec_from_file_location("_format_writers", HERE.parent / "tests" / "_format_writers.py")
    writers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writers)
    write_fastmri = writers.write_fastmri

    mask = fastmri_mask(COLS, "random", 4, 0.08, seed=0)
    return write_fastmri(path, _phantom(slices), COILS, mask=mask, noise=0.01)


def child(path: str) -> dict:
    """Read the file once (in this fresh process) and report times and memory."""
    import resource

    import torch

    torch.set_num_threads(1)
    from napari_d3ip.io import inspect_file, open_measurement

    claimed = inspect_file(path)["memory_bytes"]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    marks: list[float] = []
    t0 = time.perf_counter()
    m = open_measurement(path, progress=lambda stage, i, n: marks.append(time.perf_counter()))
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    per_slice = np.diff([t0, *marks])
    return {"total_s": total, "first_slice_s": float(per_slice[0]),
            "espirit_per_slice_s": [float(v) for v in per_slice[1:]],
            "after_maps_s": float(t0 + total - marks[-1]), "peak_rss_bytes": peak,
            "rss_after_imports_bytes": base, "claimed_bytes": float(claimed),
            "y_shape": list(m.y.shape), "acs_block": m.simulation["acs_block"],
            "espirit_kernel": m.simulation["espirit_kernel"],
            "acceleration": m.simulation["achieved_acceleration"]}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def report(r: dict, slices: int, file_bytes: int) -> str:
    esp = r["espirit_per_slice_s"]
    esp_txt = (f"{np.median(esp):.1f} s (median of slices 2..{slices})" if esp else "n/a")
    gib = 2.0 ** 30
    return "\n".join([
        "# Reading a fastMRI-size multi-coil file",
        "",
        f"`OMP_NUM_THREADS=1 python -m benchmarks.read_fastmri --slices {slices}` on {_cpu()} "
        f"(1 thread; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores while it "
        "ran: the machine is shared, times are upper bounds).",
        "",
        f"File: fastMRI test-style, `kspace` ({slices}, {COILS}, 640, {COLS}) complex64 "
        f"({file_bytes / 2**20:.0f} MiB), random 4x mask with centre fraction 0.08 "
        f"(achieved R {r['acceleration']:.2f}), 1 % noise; read as {r['y_shape']} "
        f"(readout oversampling cropped), ACS block {r['acs_block']}, ESPIRiT kernel "
        f"{r['espirit_kernel']}.",
        "",
        "| what | measured |",
        "|---|---|",
        f"| whole read (`open_measurement`) | {r['total_s']:.1f} s |",
        f"| HDF5 read + oversampling crop + ESPIRiT of slice 1 | {r['first_slice_s']:.1f} s |",
        f"| ESPIRiT per further slice | {esp_txt} |",
        f"| after the maps (phase: CG-SENSE 8 steps, scaling) | {r['after_maps_s']:.1f} s |",
        f"| peak resident memory of the process | {r['peak_rss_bytes'] / gib:.2f} GiB "
        f"(after imports: {r['rss_after_imports_bytes'] / gib:.2f} GiB) |",
        f"| what `d3ip inspect` claims a run needs | {r['claimed_bytes'] / gib:.2f} GiB |",
        "",
        "A whole knee volume (~35 slices) takes about slices x the per-slice time to read; "
        "`--slices a:b` reads part of it. `d3ip reconstruct` prints ESPIRiT's progress per "
        "slice on stderr.",
        "",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = write_file(Path(tmp) / "file_knee_test.h5", args.slices)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-m", "benchmarks.read_fastmri", "--child", str(path)],
                             cwd=HERE.parent, env=env, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        text = report(result, args.slices, path.stat().st_size)
    (HERE / "read_fastmri.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
