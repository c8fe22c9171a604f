#!/usr/bin/env bash
# Fill one activation cache from a SLURM array: each task extracts a disjoint set of shards.
#
#   sbatch --array=0-7 examples/slurm_extract.sh
#
# Every task runs the same command with its own --shard I/N. A task that is killed (time limit,
# pre-emption, node failure) is simply resubmitted: it skips the shards already recorded as complete
# and rewrites nothing else. When all tasks are done, `actstore info` shows the cache as complete.
#SBATCH --job-name=actstore-extract
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=04:00:00
#SBATCH --output=logs/extract_%A_%a.out
set -euo pipefail

MODEL=${MODEL:-/path/to/Qwen2.5-32B}
CACHE=${CACHE:-runs/velocity_computation/cache.zarr}   # where `actstore run` looks
N=${SLURM_ARRAY_TASK_COUNT:-1}
I=${SLURM_ARRAY_TASK_ID:-0}
LAYERS=7,15,23,31,47,55,63

# The prompt files are written once, before the array starts (same seed -> same prompts anywhere):
#   actstore prompts write arithmetic arithmetic.jsonl --n 2000 --seed 0
#   actstore prompts write kinetic_energy physics.jsonl --n 50 --seed 2 -o cot=worked
# Each array task then does its share of both prompt sets.
actstore extract --model "$MODEL" --prompts arithmetic.jsonl --set-name arithmetic \
    --layers "$LAYERS" --out "$CACHE" --shard "$I/$N" --progress log
actstore extract --model "$MODEL" --prompts physics.jsonl --set-name physics \
    --layers "$LAYERS" --out "$CACHE" --shard "$I/$N" --progress log

# After the array finishes (e.g. in a dependent job, or on a laptop after copying runs/):
#   actstore info "$CACHE"
#   actstore verify "$CACHE"
#   actstore run experiments/velocity_computation.toml --out runs/velocity_computation
#     (extraction is found complete and skipped; probes, detection, plots and report run on CPU)
