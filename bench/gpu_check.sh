#!/usr/bin/env bash
# One prepared GPU check: build the CUDA plugins, run the ops' CUDA parity and gradient tests, then
# measure inference (portrait, video frame), training iterations, projection, viewer frames and the
# end-to-end scripts on the GPU.
#
#   bash bench/gpu_check.sh [OUTDIR]        # OUTDIR defaults to $OUT, else ./gpu-check
#   GPU_CHECK_SECONDS=420 bash bench/gpu_check.sh    # overall time budget (default 450 s)
#
# Steps run in order of importance, each under its own time limit and never past the overall
# budget (a step that no longer fits is listed as skipped); the script goes on past a failing step,
# so one call reports everything. Everything lands in three files: OUTDIR/summary.md (step, exit
# code, seconds), OUTDIR/steps.log (every step's output) and OUTDIR/outputs.tar (the images and
# videos the scripts wrote). Python packages the GPU machine lacks (imageio-ffmpeg for the videos)
# can be carried as wheels in .whl/ (see docs/benchmarks.md); they are installed into /tmp/site first.
set -u
cd "$(dirname "$0")/.."
outdir=${1:-${OUT:-gpu-check}}
budget=${GPU_CHECK_SECONDS:-450}
mkdir -p "$outdir/outputs"
summary="$outdir/summary.md"
log="$outdir/steps.log"
export PYTHONUNBUFFERED=1
: > "$log"

if compgen -G '.whl/*.whl' > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

echo "| step | exit code | seconds |" > "$summary"
echo "| --- | --- | --- |" >> "$summary"

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  local left=$((budget - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "| $name | skipped (budget spent) | 0 |" >> "$summary"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local start=$SECONDS
  echo "== $name (limit ${limit} s): $*" | tee -a "$log"
  timeout "$limit" "$@" > "$outdir/step.tmp" 2>&1
  local rc=$?
  cat "$outdir/step.tmp" >> "$log"
  echo "| $name | $rc | $((SECONDS - start)) |" >> "$summary"
  tail -n 15 "$outdir/step.tmp"
  rm -f "$outdir/step.tmp"
}

step environment 30 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; nvcc --version | tail -n 2'
# The four plugins build in parallel processes (each one's nvcc and host compiler jobs run under ninja);
# volume_render is CPU-only (no CUDA kernels to check for), built here so that ops_tests need not.
step build_plugins 240 bash -c '
for op in bias_act upfirdn2d filtered_lrelu volume_render; do
  PSTYLE3D_REQUIRE_CUSTOM_OPS=1 python3 -c "
import time, torch
from torch_utils.ops import $op as op
start = time.time()
assert op._plugin() is not None
assert \"$op\" == \"volume_render\" or \"cuda\" in op._plugin().devices, \"built without its CUDA kernels\"
print(\"$op: built in\", round(time.time() - start, 1), \"s\")" &
done
status=0
for job in $(jobs -p); do wait $job || status=1; done
exit $status'
step ops_tests 150 python3 -m pytest -q -p no:cacheprovider -rfE tests/torch_utils/ops \
  --deselect tests/torch_utils/ops/test_cuda_sources.py
step bench_inference 120 python3 bench/bench_inference.py --device=cuda --reps=3
step training_batch1 120 python3 bench/bench_training.py speed --cfg=ffhq512 --batch=1 --iters=4
step training_batch4 120 python3 bench/bench_training.py speed --cfg=ffhq512 --batch=4 --iters=4
step bench_viewer 90 python3 bench/bench_viewer.py --preset=ffhq512 --device=cuda --frames=40
step bench_projector 120 python3 -m bench.bench_projector --device=cuda --steps=3
step gen_samples 60 python3 gen_samples.py --outdir="$outdir/outputs/samples" --device=cuda
step gen_videos 90 python3 gen_videos.py --outdir="$outdir/outputs/videos" --device=cuda
step bench_generator 150 python3 bench/bench_generator.py --device=cuda --batch=1 --batch=4 --chunk=default --chunk=all
step bench_ops 90 python3 bench/bench_ops.py --device=cuda --repeats=20
step bench_metrics 90 python3 bench/bench_metrics.py --device=cuda --images=64 --batch=16

tar -cf "$outdir/outputs.tar" -C "$outdir" outputs && rm -rf "$outdir/outputs"
echo
cat "$summary"
