#!/usr/bin/env bash
# Issue 13's choice of the bundled denoiser at GPU scale, in one device call of about 9 minutes (benchmarks/README.md,
# "GPU"): trains the candidates side by side on one GPU, each on fresh simulated patches from its share of the CPU
# cores (the generator, not the GPU, limits the rate), for the same MINUTES (default 4), then scores them on the
# unseen microscopes (the bundled model's scores on the same scans: benchmarks/README.md, "Unseen microscopes").
# Run from the repository root with the Keras wheels in .whl/ (as for gpu_check.sh); results land in $OUT (default
# gpu-candidates/): each model, its training log, unseen.txt. QUICK=1 MINUTES=0.2 rehearses it on a CPU.
set -uo pipefail
out=${OUT:-gpu-candidates}
minutes=${MINUTES:-4}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "cannot install the carried wheels"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$out/gpu.txt"
candidates=("unet12:--filters 12" "unet12s:--filters 12 --spacing-input" "unet24:--filters 24"
  "unet24s:--filters 24 --spacing-input")
workers=$(( $(nproc) / ${#candidates[@]} - 1 ))  # each run: one training process and its simulation workers
workers=$(( workers < 1 ? 1 : workers ))
limit=$(python3 -c "print(int($minutes * 60 + 300))")  # start-up, training, then its held-out table
echo "$(date -u +%H:%M:%S) ${#candidates[@]} candidates, $minutes min each, $workers generator workers each"
for candidate in "${candidates[@]}"; do
  name=${candidate%%:*}
  # shellcheck disable=SC2086  # the options are words
  timeout "$limit" python3 scripts/train_default_model.py --generator --workers "$workers" --steps 64 \
    --minutes "$minutes" ${candidate#*:} --out "$out/$name.keras" >"$out/$name.log" 2>&1 &
done
wait
for candidate in "${candidates[@]}"; do
  name=${candidate%%:*}
  echo "$name: $(tr '\r' '\n' <"$out/$name.log" | grep -m1 '^trained' || echo "no model: see $name.log")"
done
models=()
for candidate in "${candidates[@]}"; do
  [ -f "$out/${candidate%%:*}.keras" ] && models+=("$out/${candidate%%:*}.keras")
done
echo "$(date -u +%H:%M:%S) scoring"
timeout 240 python3 benchmarks/unseen.py ${QUICK:+--quick} --models "${models[@]}" >"$out/unseen.txt" 2>&1
sed -n '/^| method/,$p' "$out/unseen.txt"
echo "$(date -u +%H:%M:%S) done"
