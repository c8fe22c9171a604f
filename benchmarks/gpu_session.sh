#!/usr/bin/env bash
# The device check behind the GPU table of docs/benchmarks.md, as one script for a lent GPU machine whose
# Python (3.12, with torch and transformers) lacks zarr and friends: those come as wheels in .whl/
# (see docs/benchmarks.md, "Extraction"). Writes its log and JSON to $OUT (or ./gpu_out).
# Fetch the wheels once on a machine with PyPI (cp312, manylinux x86_64, no dependencies):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl zarr==3.1.6 numcodecs==0.16.6 donfig crc32c google-crc32c dask==2026.8.0 partd locket \
#     xarray==2026.9.0 transformer-lens==4.3.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
#     fancy-einsum beartype typeguard
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc; free -g | head -2
  python3 -c "import actstore, zarr, xarray, transformers, torch; print('zarr', zarr.__version__, 'xarray', xarray.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
} 2>&1 | tee "$OUT/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/extractors 2>&1 | tail -6 | tee -a "$OUT/gpu.txt"
timeout "${BENCH_TIMEOUT:-330}" python3 benchmarks/extract_gpu.py --shape 32b --layers-total 16 \
    --n-prompts "${N_PROMPTS:-2000}" --repeats 1 --json "$OUT/gpu.json" 2>&1 \
    | grep -v "Loading weights" | tee -a "$OUT/gpu.txt"
