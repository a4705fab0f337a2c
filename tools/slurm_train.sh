#!/usr/bin/env bash
# Train under slurm, one task per GPU (srun starts the tasks; no torchrun).
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options...]
# Environment: GPUS (8, total tasks), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (""),
# TASKS_PER_NODE (GPUS_PER_NODE), PYTHON (python). On CPU-only nodes set GPUS_PER_NODE=0
# (no --gres; gloo backend) and TASKS_PER_NODE.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [tools/train.py options...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASKS_PER_NODE=${TASKS_PER_NODE:-$GPUS_PER_NODE}
if [ "$TASKS_PER_NODE" -lt 1 ]; then
    echo "$0: with GPUS_PER_NODE=0 (CPU nodes) set TASKS_PER_NODE to the tasks per node" >&2
    exit 2
fi
GRES=()
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    GRES=(--gres="gpu:$GPUS_PER_NODE")
fi
# shellcheck disable=SC2086
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "$CONFIG" --launcher slurm "$@"
