#!/usr/bin/env bash
# Equal-compute pilot of phantom families (quality issue item 2): the same recipe (v-prediction,
# no min-SNR cap: the third pilot's), 32 channels, 1 thread, 30 minutes of process CPU time each,
# run one after the other. Resumable: re-running continues each run from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
for fam in organic ellipses; do
  out=training/runs/pilot-phantoms/$fam
  resume=""; [ -f "$out/state.json" ] && resume="--resume"
  d3ip train-prior --out "$out" --name "pilot-$fam" --phantoms "$fam" --recipe v-minsnr \
    --min-snr-gamma 0 --channels 32 --threads 1 --steps 100000 --budget-minutes 30 \
    --val-every 500 --checkpoint-minutes 5 --device cpu $resume
done
