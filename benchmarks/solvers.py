"""The fixed-prior solvers with the shipped prior: ADMM-TV, DDS, DDNM, DPS, DiffusionMBIR.

On the 64³ sample brain for sparse-view CT (15 views, 1 % noise) and Poisson-disc MRI (R = 8),
same seed for all; PSNR / SSIM (per-slice means), volume PSNR, wall time and peak memory.
Runs through quality.py's machinery (same tasks, presets and measurements); writes
benchmarks/solvers.md and its section (`solvers/<label>`) of benchmarks/results.json.

DPS runs with the same NFE as the others unless --dps-nfe is given, which also makes it a DDPM
sampler (η = 1) as in the paper (1000 DDPM steps; every step a backward pass through the UNet).
Measured on 64 slices of 64² (2-core CPU, 1 thread, 2026-11-25): a DPS step costs 1.3x a DDS
step (3.19 s vs 2.45 s), so the paper's 1000 steps cost about 26x a 50-step DDS run (≈ 53 min
against 2 min here). The full runs used --dps-nfe 250 with every method, then DPS alone with
--dps-nfe 1000 (sections dps1000-ct / dps1000-mri).

    python -m benchmarks.solvers --quick         # 8 central slices, NFE 5
    python -m benchmarks.solvers                 # 64 slices, NFE 50 (the presets)
"""

from __future__ import annotations

from pathlib import Path

from . import quality
from .measure import set_threads
from .report import f2, mb, section_header
from .store import sections
from .tables import md_table
from .tasks import METHODS, PAPER, TASKS

SOLVER_METHODS = ("admm-tv", "dds", "ddnm", "dps", "mbir")
SOLVER_TASKS = ("ct15", "mri-r8")
# the paper (Table 2, 256^3): DDS over ADMM-TV +2.30 dB (CT), +0.70 dB (MRI)


def parser():
    ap = quality.parser()
    ap.description = __doc__.splitlines()[0]
    ap.set_defaults(methods=",".join(SOLVER_METHODS), tasks=",".join(SOLVER_TASKS))
    ap.add_argument("--dps-nfe", type=int, default=None,
                    help="NFE of DPS (default: the same as the others; the paper uses 1000)")
    return ap


def run_solvers(argv: list[str] | None = None, prior=None) -> dict:
    args = parser().parse_args(argv)
    if args.label is None:
        args.label = "quick" if args.quick else "full"
    args = quality.resolve(args)
    set_threads(args.threads)
    over = {"dps": {"nfe": args.dps_nfe, "eta": 1.0}} if args.dps_nfe else None
    out_dir = Path(args.out_dir)

    def write() -> None:
        write_md(out_dir)

    section = quality.run_grid(args, "solvers", prior, method_overrides=over, after_each=write)
    path = write_md(out_dir)
    print(f"wrote {path}")
    return section


def verdicts(s: dict) -> list[str]:
    by = {(r["task"], r["method"]): r for r in s["rows"] if r.get("status") == "ok"}
    lines = []
    for t in SOLVER_TASKS:
        dds = by.get((t, "dds"))
        if not dds:
            continue
        for other in ("admm-tv", "ddnm", "dps", "mbir"):
            r = by.get((t, other))
            if not r:
                continue
            d = dds["psnr"] - r["psnr"]
            word = "beats" if d > 0 else "does NOT beat"
            lines.append(f"- {TASKS[t].label}: DDS {word} {METHODS[other][0]} "
                         f"({d:+.2f} dB PSNR, {dds['ssim'] - r['ssim']:+.3f} SSIM)")
    return lines


def _paper(row: dict) -> str:
    col = TASKS[row["task"]].paper
    p = PAPER.get(col, {}).get(row["method"]) if col else None
    return f"{p[0]:.2f} / {p[1]:.3f}" if p else "—"


def write_md(out_dir: Path) -> Path:
    lines = ["# Fixed-prior solvers (no adaptation)", "",
             "Made by `benchmarks/solvers.py` (see its docstring). Paper (Table 2, 256³): DDS "
             "beats ADMM-TV by +2.30 dB on SV-CT and +0.70 dB on 3D MRI, and DiffusionMBIR "
             "beats DDS by +1.27 / +2.38 dB; DDNM (23.55 / 14.59 dB) and DPS (17.85 / 27.30 dB, 1000 "
             "DDPM steps) lose to DDS on SV-CT. The `paper` column is that table (256³, 60-view CT, "
             "R = 15 MRI): compare orderings and gaps, not absolute dB.", ""]
    for _label, s in sorted(sections(out_dir, "solvers").items(),
                           key=lambda kv: (kv[0].startswith("quick"), kv[0])):
        lines += [f"## {s['title']}", ""] + section_header(s)
        table = []
        for r in s["rows"]:
            table.append([TASKS[r["task"]].label, METHODS[r["method"]][0],
                          "—" if r["method"] == "admm-tv" else str(r.get("nfe")),
                          f2(r.get("psnr")), f2(r.get("ssim"), 3),
                          f2(r.get("volume_psnr")), f2(r.get("wall_seconds"), 1),
                          mb(r.get("peak_rss_bytes")), _paper(r), r.get("status", "?")[:80]])
        lines += md_table(["task", "method", "NFE", "PSNR", "SSIM", "volume PSNR",
                                  "wall s", "peak MB", "paper PSNR / SSIM", "status"], table) + [""]
        v = verdicts(s)
        if v:
            lines += ["Does DDS beat the others, as in the paper?", ""] + v + [""]
    path = out_dir / "solvers.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    run_solvers(argv)


if __name__ == "__main__":
    main()
