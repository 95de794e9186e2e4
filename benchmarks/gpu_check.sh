#!/usr/bin/env bash
# GPU readiness check for one CUDA machine, about 10 minutes in all.
#
#   benchmarks/gpu_check.sh [OUT_DIR]      (default: work_dirs/gpu_check)
#
# 1. 50 iterations of the ViT-S/16 COCO config (configs/cribo/vit-s16_coco.py:
#    K=64, 65 536-d heads, bank of 25 000 images, batch 32) on the embedded
#    demo scenes instead of COCO, with --amp (fp16, dynamic loss scaling) and
#    with --amp in bf16: median step time, images/s, peak GPU memory;
# 2. a single-GPU tools/dist_train.sh run (torchrun, NCCL), 10 iterations;
# 3. the benchmarks that accept --device cuda (train_step.py and any other
#    benchmarks/*.py whose --help lists --device).
# Everything goes to OUT_DIR; the figures to OUT_DIR/summary.txt. Stops at the
# first failure; refuses to start on a machine without CUDA. Environment:
# PYTHON (default .venv/bin/python, else python), CRIBO_GPU_CHECK_BENCH_TIMEOUT
# (seconds per benchmark, default 120; train_step.py gets twice that).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
OUT=${1:-work_dirs/gpu_check}
BENCH_TIMEOUT=${CRIBO_GPU_CHECK_BENCH_TIMEOUT:-120}

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "gpu_check.sh: $PYTHON cannot import torch (run 'make env' first). Nothing was run." >&2
  exit 2
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check.sh: CUDA is not available to $PYTHON (torch.cuda.is_available() is False);" \
       "this check needs a CUDA GPU. Nothing was run." >&2
  exit 2
fi

mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export CRIBO_DEMO_ROOT=${CRIBO_DEMO_ROOT:-$OUT/demo_scenes}
{
  echo "cribo-mm GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  "$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")'
} | tee "$SUMMARY"

# The COCO config with the demo scenes as data: 800 images, batch 32,
# 2 epochs = 50 iterations (the cross-image term runs in the second).
CFG="$OUT/vit-s16_coco_demo-data.py"
cat > "$CFG" <<EOF
_base_ = ['$ROOT/configs/cribo/vit-s16_coco.py']
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='CrIBoDemoScenes',
        split='train',
        seed=0,
        num_train=800,
        num_val=32,
        image_size=(320, 320),
        pipeline={{_base_.train_pipeline}}))
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=100, save_last=False))
log_processor = dict(window_size=1)
auto_scale_lr = dict(enable=False)
EOF

summarize_run() {  # LABEL WORK_DIR: median step time after 10 warm-up iterations
  "$PYTHON" - "$1" "$2" <<'PY' | tee -a "$SUMMARY"
import glob, json, statistics, sys
label, work_dir = sys.argv[1:]
files = sorted(glob.glob(f'{work_dir}/*/vis_data/scalars.json'))
recs = [json.loads(l) for l in open(files[-1]) if l.strip()]
recs = [r for r in recs if 'loss' in r and 'time' in r]
times = [r['time'] for r in recs[10:]] or [r['time'] for r in recs]
mem = max((r.get('memory', float('nan')) for r in recs), default=float('nan'))
t = statistics.median(times)
loss = recs[-1]['loss']
print(f'{label:28s} {len(recs):3d} it  {t:.3f} s/it  {32 / t:7.1f} img/s  '
      f'peak {mem:.0f} MiB  last loss {loss:.3f}')
PY
}

echo -e "\n== 1. ViT-S/16 COCO config on demo data, 50 iterations" | tee -a "$SUMMARY"
for prec in fp16 bf16; do
  extra=()
  [ "$prec" = bf16 ] && extra=(--cfg-options optim_wrapper.dtype=bfloat16)
  start=$(date +%s)
  "$PYTHON" tools/train.py "$CFG" --amp --work-dir "$OUT/train_$prec" "${extra[@]}" \
    > "$OUT/train_$prec.log" 2>&1 || { echo "training ($prec) failed, see $OUT/train_$prec.log" | tee -a "$SUMMARY"; exit 1; }
  summarize_run "train $prec ($(( $(date +%s) - start )) s)" "$OUT/train_$prec"
done

echo -e "\n== 2. tools/dist_train.sh, 1 GPU, NCCL, 10 iterations" | tee -a "$SUMMARY"
start=$(date +%s)
PYTHON="$PYTHON" PORT=${PORT:-29577} tools/dist_train.sh "$CFG" 1 --amp --work-dir "$OUT/dist_nccl" \
  --cfg-options train_dataloader.dataset.num_train=320 train_cfg.max_epochs=1 \
  > "$OUT/dist_nccl.log" 2>&1 || { echo "dist_train.sh failed, see $OUT/dist_nccl.log" | tee -a "$SUMMARY"; exit 1; }
echo "dist_train.sh: ok in $(( $(date +%s) - start )) s" | tee -a "$SUMMARY"
summarize_run "dist_train 1 GPU fp16" "$OUT/dist_nccl"

echo -e "\n== 3. benchmarks --device cuda" | tee -a "$SUMMARY"
for bench in benchmarks/*.py; do
  name=$(basename "$bench" .py)
  case "$name" in _*) continue ;; esac
  if ! "$PYTHON" "$bench" --help 2>/dev/null | grep -q -- '--device'; then
    echo "$name: no --device option, skipped" | tee -a "$SUMMARY"
    continue
  fi
  args=(--device cuda)
  limit=$BENCH_TIMEOUT
  if [ "$name" = train_step ]; then
    args+=(--repeats 3 --warmup 1 --bank-images 25000)  # the paper's bank
    limit=$(( 2 * BENCH_TIMEOUT ))
  fi
  echo "-- $name ${args[*]}" | tee -a "$SUMMARY"
  if timeout "$limit" "$PYTHON" "$bench" "${args[@]}" > "$OUT/bench_$name.log" 2>&1; then
    tail -n 25 "$OUT/bench_$name.log" | tee -a "$SUMMARY"
  else
    echo "$name: failed or over ${limit} s, see $OUT/bench_$name.log" | tee -a "$SUMMARY"
  fi
done
echo -e "\nsummary: $SUMMARY" | tee -a "$SUMMARY"
