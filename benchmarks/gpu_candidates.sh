#!/usr/bin/env bash
# Issue 13's choice of the bundled denoiser at GPU scale, in one device call of under 9.5 minutes (benchmarks/README.md,
# "GPU"): trains the candidates side by side on one GPU, each on fresh simulated patches from its share of the CPU
# cores (the generator, not the GPU, limits the rate), for the same wall-clock MINUTES (default 4), then scores them
# and the shipped model on the same unseen-microscope scans (benchmarks/README.md, "Unseen microscopes").
# Run from the repository root with the Keras wheels in .whl/ (as for gpu_check.sh). Results land in $OUT (default
# gpu-candidates/) as 4 files, within the device tool's 8: gpu.txt, train.log (every candidate's log), unseen.txt
# and models.tar (the trained models). QUICK=1 MINUTES=0.2 GRACE=400 rehearses it on a CPU (Keras installed, no .whl).
set -uo pipefail
deadline=$((SECONDS + 560))  # the call's limit is 590 s: the scores must be written before it
out=${OUT:-gpu-candidates}
work=/tmp/gpu-candidates
minutes=${MINUTES:-4}
mkdir -p "$out" "$work"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "cannot install the carried wheels"; exit 1; }
elif ! python3 -c "import keras" 2>/dev/null; then
  echo "no .whl/ with the Keras wheels and no Keras installed: see benchmarks/README.md, GPU"; exit 1
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false  # four trainings share one GPU
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null | tee "$out/gpu.txt"
candidates=("unet12:--filters 12" "unet12s:--filters 12 --spacing-input" "unet24:--filters 24"
  "unet24s:--filters 24 --spacing-input")
workers=$(( $(nproc) / ${#candidates[@]} - 1 ))  # each run: one training process and its simulation workers
workers=$(( workers < 1 ? 1 : workers ))
grace=${GRACE:-150}  # start-up and compiling, then the held-out table (a run killed there keeps its model)
limit=$(python3 -c "print(int($minutes * 60 + $grace))")
echo "$(date -u +%H:%M:%S) ${#candidates[@]} candidates, $minutes min each, $workers generator workers each"
for candidate in "${candidates[@]}"; do
  name=${candidate%%:*}
  # shellcheck disable=SC2086  # the options are words
  timeout "$limit" python3 scripts/train_default_model.py --generator --workers "$workers" --steps 64 \
    --minutes "$minutes" ${candidate#*:} --out "$work/$name.keras" >"$work/$name.log" 2>&1 &
done
wait
models=()
for candidate in "${candidates[@]}"; do
  name=${candidate%%:*}
  { echo "== $name"; tr '\r' '\n' <"$work/$name.log" | grep -v '^ *$' | tail -n 40; } >>"$out/train.log"
  echo "$name: $(tr '\r' '\n' <"$work/$name.log" | grep -m1 '^trained' || echo "no model: see train.log")"
  [ -f "$work/$name.keras" ] && models+=("$name.keras")
done
[ ${#models[@]} -gt 0 ] && tar -cf "$out/models.tar" -C "$work" "${models[@]}"
left=$((deadline - SECONDS))
echo "$(date -u +%H:%M:%S) scoring (${left} s left)"
(cd "$work" && timeout "$left" python3 "$OLDPWD/benchmarks/unseen.py" ${QUICK:+--quick} --models \
  "$OLDPWD/resources/models/denoiser_default.keras" "${models[@]}") \
  >"$out/unseen.txt" 2>&1
sed -n '/^| method/,$p' "$out/unseen.txt"
echo "$(date -u +%H:%M:%S) done"
