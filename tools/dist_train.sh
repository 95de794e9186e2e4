#!/usr/bin/env bash
# Distributed training on one or several nodes with torchrun.
#   tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. On CPU the gloo backend is
# chosen automatically by mmengine.
#
# Faults: this script `exec`s torchrun (tools/dist_launch.py), so signals
# sent to it (SIGTERM, SIGINT, SIGHUP from a closed terminal) reach torchrun,
# which stops every rank. If torchrun itself is killed (SIGKILL), each rank
# follows it (tools/train.py sets PR_SET_PDEATHSIG, see
# cribo_mm/utils/dist_faults.py). A rank that stops responding makes the
# others fail after the collective timeout (env_cfg.dist_cfg.timeout or
# CRIBO_DIST_TIMEOUT, in seconds, default 1800); torchrun then stops the job
# with a non-zero status, killing ranks that ignore SIGTERM (or are stopped)
# after TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (default here 10).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG NUM_PROCS [train.py options]" >&2
  exit 2
fi
CONFIG=$1
NPROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}

# torchrun keeps this process id: the ranks check it is still their parent
export CRIBO_LAUNCHER_PID=$$
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-10}
exec "$PYTHON" "$(dirname "$0")/dist_launch.py" \
  --nnodes="$NNODES" \
  --node_rank="$NODE_RANK" \
  --master_addr="$MASTER_ADDR" \
  --master_port="$PORT" \
  --nproc_per_node="$NPROCS" \
  "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
