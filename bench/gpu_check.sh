#!/usr/bin/env bash
# One prepared GPU check: build the CUDA plugins, run the ops' CUDA parity tests, then measure
# inference (portrait, video frame), training steps and the end-to-end scripts on the GPU.
#
#   bash bench/gpu_check.sh [OUTDIR]        # OUTDIR defaults to $OUT, else ./gpu-check
#
# Every step runs under its own time limit and the script goes on past a failing step, so one call
# reports everything; each step's output is in OUTDIR/<step>.log and OUTDIR/summary.md lists
# step, exit code and seconds. Python packages the GPU machine lacks can be carried as wheels in
# .whl/ (see docs/benchmarks.md); they are installed into /tmp/site first.
set -u
cd "$(dirname "$0")/.."
outdir=${1:-${OUT:-gpu-check}}
mkdir -p "$outdir"
summary="$outdir/summary.md"
export PYTHONUNBUFFERED=1

if compgen -G '.whl/*.whl' > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

echo "| step | exit code | seconds |" > "$summary"
echo "| --- | --- | --- |" >> "$summary"

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name: $*"
  timeout "$limit" "$@" > "$outdir/$name.log" 2>&1
  local rc=$?
  echo "| $name | $rc | $((SECONDS - start)) |" >> "$summary"
  tail -n 25 "$outdir/$name.log"
}

step environment 60 bash -c 'nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; nvcc --version'
step build_plugins 300 python3 -c "
import torch
from torch_utils.ops import bias_act, filtered_lrelu, upfirdn2d, volume_render
x = torch.randn(2, 4, 16, 16, device='cuda')
for op in (bias_act, upfirdn2d, filtered_lrelu, volume_render):
    assert op._plugin() is not None, op.__name__
print(bias_act.bias_act(x, act='lrelu', impl='cuda').abs().sum().item())
print('CUDA plugins built and ran')"
step ops_parity 300 python3 -m pytest -q -x tests/torch_utils/ops
step bench_ops 180 python3 bench/bench_ops.py --device=cuda --repeats=20
step bench_generator 240 python3 bench/bench_generator.py --device=cuda --batch=1 --batch=4
step bench_inference 240 python3 bench/bench_inference.py --device=cuda --reps=3
step bench_training 240 python3 bench/bench_training.py speed --cfg=tiny --iters=6
step gen_samples 180 python3 gen_samples.py --outdir="$outdir/samples" --device=cuda
step gen_videos 180 python3 gen_videos.py --outdir="$outdir/videos" --device=cuda
for extra in bench_projector bench_viewer bench_metrics; do
  if [ -f "bench/$extra.py" ]; then
    step "$extra" 240 python3 "bench/$extra.py" --device=cuda
  fi
done
echo
cat "$summary"
