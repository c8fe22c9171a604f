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
CACHE=${CACHE:-$SCRATCH/velocity.zarr}
N=${SLURM_ARRAY_TASK_COUNT:-1}
I=${SLURM_ARRAY_TASK_ID:-0}
LAYERS=7,15,23,31,47,55,63

# Two prompt sets of the reference study; each array task does its share of both.
actstore extract --model "$MODEL" --prompts multiplication --n 1000 --seed 0 \
    --set-name multiplication --layers "$LAYERS" --out "$CACHE" --shard "$I/$N"
actstore extract --model "$MODEL" --prompts kinetic_energy --n 50 --seed 2 --option cot=worked \
    --set-name physics --layers "$LAYERS" --out "$CACHE" --shard "$I/$N"

# After the array finishes (e.g. in a dependent job):
#   actstore info "$CACHE"
#   actstore verify "$CACHE"
