#!/usr/bin/env bash
# Everything one short accelerator lease runs, in order of need, inside a deadline:
#   bash benchmarks/device_lease.sh [SECONDS]   (default 540; logs and traces to $OUT or /tmp)
# 0. the paper check (make paper-check: the default run to the end, its run directory left in
#    $OUT/paper_check for the claims command and the report), 1. the accelerator check
#    (make device-check: train, the default run's first 1,000 steps,
#    the 163M model's first 200, peak memory), 2. where a training step's time goes
#    (benchmarks/step_profile.py, paper shape, batch 128), 3. evaluation throughput
#    (bench eval, paper shape). Each later part runs only if the deadline leaves it time.
# On a machine without grain and fiddle (no internet), carry their wheels in .whl/ (README,
# Benchmarks): they are installed to /tmp/site first.
set -u
deadline=$((SECONDS + ${1:-540}))
out=${OUT:-/tmp/device_lease}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.
fi
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import jax; print(jax.__version__, jax.devices())" 2>&1 | tail -1

left() { echo $((deadline - SECONDS)); }
part() {  # part NAME MIN_SECONDS CMD...: runs CMD, logged to $out/NAME.log, if time is left
  local name=$1 need=$2
  shift 2
  if [ "$(left)" -lt "$need" ]; then
    echo "== $name: skipped, $(left) s left"
    return
  fi
  echo "== $name ($(left) s left)"
  local start=$SECONDS
  timeout "$(left)" "$@" >"$out/$name.log" 2>&1
  echo "== $name: exit $?, $((SECONDS - start)) s"
  grep -h '^{' "$out/$name.log"
}
part paper 420 python3 -m bioknow.bench paper --paper_workdir="$out/paper_check/phases/phases"
part check 300 python3 -m bioknow.bench device
part profile 60 python3 benchmarks/step_profile.py --out="$out"
part eval 40 python3 -m bioknow.bench eval --scales=paper --seconds=3
echo "== done, $(left) s left"
