#!/usr/bin/env bash
# The GPU check (benchmarks/README.md, "GPU"): on a machine with a CUDA GPU, JAX and PyTorch but no TensorFlow, from
# the repository root, with the Keras wheels carried in .whl/. Runs the backend-sensitive ml tests under JAX and
# PyTorch, the cross-backend model matrix, then benchmarks/gpu.py on both; results land in $OUT (default gpu-check/).
# Each step has its own time limit so the whole run stays under 8 minutes.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "cannot install the carried wheels"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
tests=(tests/ml/test_backend.py tests/ml/test_inference.py tests/ml/test_training.py tests/ml/test_gradcam.py
  tests/ml/test_persistence.py)
for backend in jax torch; do
  KERAS_BACKEND=$backend timeout 90 python3 -m pytest -v -p no:cacheprovider "${tests[@]}" >"$out/tests_$backend.txt" 2>&1
  echo "tests on $backend: $(tail -n 1 "$out/tests_$backend.txt")"
done
KERAS_BACKEND=jax timeout 90 python3 -m pytest -q -p no:cacheprovider tests/ml/test_cross_backend.py >"$out/cross_backend.txt" 2>&1
echo "cross-backend: $(tail -n 1 "$out/cross_backend.txt")"
for backend in jax torch; do
  KERAS_BACKEND=$backend timeout 100 python3 benchmarks/gpu.py >"$out/bench_$backend.txt" 2>&1
  cat "$out/bench_$backend.txt"
done
