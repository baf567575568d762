#!/usr/bin/env bash
# The GPU check (benchmarks/README.md, "GPU"): on a machine with a CUDA GPU, JAX and PyTorch but no TensorFlow, from
# the repository root, with the Keras wheels carried in .whl/. Runs the backend-sensitive ml tests under JAX and
# PyTorch and the cross-backend model matrix side by side (16 cores, one GPU with room for all three), then
# benchmarks/gpu.py on both backends; results land in $OUT (default gpu-check/), 6 files (the device tool brings 8
# back). Each step has its own time limit so the whole run stays under 8 minutes (the call's limit is 10).
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "cannot install the carried wheels"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
tests=(tests/ml/test_backend.py tests/ml/test_inference.py tests/ml/test_training.py tests/ml/test_gradcam.py
  tests/ml/test_persistence.py)
echo "$(date -u +%H:%M:%S) tests on jax and torch, and the cross-backend matrix, side by side"
for backend in jax torch; do  # -v: a step cut off still names each test it got through
  KERAS_BACKEND=$backend timeout 240 python3 -m pytest -v -p no:cacheprovider "${tests[@]}" \
    >"$out/tests_$backend.txt" 2>&1 &
done
KERAS_BACKEND=jax timeout 240 python3 -m pytest -v -p no:cacheprovider tests/ml/test_cross_backend.py \
  >"$out/cross_backend.txt" 2>&1 &
wait
for name in tests_jax tests_torch cross_backend; do
  echo "$name: $(tail -n 1 "$out/$name.txt")"
done
for backend in jax torch; do  # gpu.py prints each recipe's row as soon as it is measured
  echo "$(date -u +%H:%M:%S) gpu.py on $backend"
  KERAS_BACKEND=$backend timeout 100 python3 benchmarks/gpu.py >"$out/bench_$backend.txt" 2>&1
  cat "$out/bench_$backend.txt"
done
echo "$(date -u +%H:%M:%S) done"
