#!/usr/bin/env bash
# Every GPU check of issues #7 (Triton kernel) and #8 (end-to-end speed), in ONE call on a lent CUDA machine
# (15 minutes of device time per session, machine start included; one command may run 600 s). The worst case of this
# script, every limit and every --kill-after margin included, is at most 600 s, for a call with the default steps and
# for one naming a step of ON_REQUEST alone (tests/test_gpu_check_script.py sums both); the step limits are weighted by priority and were set from the first GPU run (2026-11-30, an H200:
# docs/gpu-runs/2026-11-30/, where msda and gpu_tests passed, so they moved back in the order).
# gpu_tests has 60 s (12 tests took 24.5 s of pytest time on 2026-11-30, plus 5-8 s of start-up; there are 20 now, 8
# new, 7 of them CUDA-graph tests); of its 15 s more, 10 come from msda (25 -> 15 s), the step with the most to spare:
# its table was measured in full on 2026-11-30 and prints row by row, so a cut keeps the first shapes; 5 from the sum's
# own spare (592 -> 597 s of 600). The other steps were cut short on 2026-11-30 (e2e, e2e_compile) or have never run at
# their present size (sam_encoder, profile, e2e_variants, e2e_sam2 with 3 boxes a frame): none has time to give.
#
#   bash scripts/gpu_prepare.sh                               # here first: .gpu/ = wheels + fixtures
#   device run: command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=600
#
# Steps, in priority order, each under its own time limit so one slow step cannot eat the others (and each benchmark
# prints each run's numbers as it ends, so a step cut by its limit keeps what it had):
#   env           GPU, driver, torch / triton / cuDNN versions, whether SDPA may pick cuDNN attention (cuDNN
#                 9.13-9.14 gave illegal memory accesses under CUDA graphs with > 1024 keys, TransformerEngine#2344),
#                 the deformable-attention backend
#   gpu_tests     pytest -m gpu -v --durations=15 (a cut run still lists which passed): kernel vs float64 reference,
#                 tracker parity with either backend, SAM fast path, the CUDA-graph encoder
#   sam_encoder   benchmarks/sam_encoders.py: SAM ViT-H's image encoder alone, fast path (42 ms on 2026-11-30,
#                 before the host syncs and rebuilt tables were removed), eager and replayed from a CUDA graph
#                 (--cuda-graph: both in one round-robin on one model)
#   e2e           benchmarks/e2e.py at real size (SAM ViT-H + R50, random weights, 854x480, 3 boxes on every frame:
#                 --objects 3): 100 and 200 frames, the release-equivalent comparison (one pair), memory ratios
#   profile       benchmarks/profile_frames.py: the models' thread (tracker + SAM ViT-H, 3 boxes a frame) under
#                 torch.profiler, 20 frames: the GPU's kernel time against the wall time (is SAM's encoder bound by the
#                 GPU or by launching its kernels?), launches and host waits per frame, the top ops
#   e2e_variants  the 100-frame video with the tracker in bf16, SAM's encoder eager and replayed from a CUDA graph
#                 (bf16 vs bf16+graph: the graph's gain end to end; tf32 was measured on 2026-11-30, 7.58 fps)
#   e2e_sam2      the same as e2e with SAM 2.1 Hiera-L (--sam sam2.1_large), 50 and 100 frames (needs the sam2 wheel
#                 that gpu_prepare.sh builds)
#   msda          benchmarks/msda.py: kernel vs reference at the tracker's shapes (measured in full on 2026-11-30;
#                 its limit gave 10 s to e2e_variants and 10 s to gpu_tests)
#   e2e_compile   bf16 + torch.compile of SAM ViT-H's encoder from a cold inductor cache: ONLY when GPU_CHECK_STEPS
#                 names it (ON_REQUEST), e.g. in a second call: the cold compile outlasted its step in both runs of
#                 2026-11-30 (63 and 68 s), so in the first call its time goes to profile
# Each step writes $OUT/<step>.txt (the device tool brings $OUT back; default ./gpu-out); this prints a summary.
# GPU_CHECK_DRY_RUN=1 runs the same plumbing on CPU with tiny sizes (tests/test_gpu_check_script.py does, in CI);
# PYTHON picks the interpreter (default python3), GPU_CHECK_DIR the prepared folder (default .gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
GPU_DIR=${GPU_CHECK_DIR:-.gpu}  # what scripts/gpu_prepare.sh made
DRY=${GPU_CHECK_DRY_RUN:-0}
ALL_STEPS="env gpu_tests sam_encoder e2e profile e2e_variants e2e_sam2 msda e2e_compile"
ON_REQUEST="e2e_compile"  # run only when GPU_CHECK_STEPS names them (not in the worst case of a call without it)
# GPU_CHECK_STEPS: a subset of the step names, separated by spaces or commas (a second call for what a first cut);
# an unknown name stops the script at once, before anything else (a call that ran nothing would be lost)
STEPS=$(echo "${GPU_CHECK_STEPS:-}" | tr ',\t' '  ' | xargs)
for name in $STEPS; do
  [[ " $ALL_STEPS " == *" $name "* ]] || { echo "GPU_CHECK_STEPS: unknown step '$name'; the steps: $ALL_STEPS"; exit 2; }
done
# the time budget (tests/test_gpu_check_script.py adds these up with the step limits below)
KILL_AFTER=5        # seconds a timed-out command gets after SIGTERM before SIGKILL
CUDA_LIMIT=20       # the CUDA check below (imports torch)
INSTALL_LIMIT=45    # installing .gpu/whl
SUMMARY_MARGIN=15   # the summary at the end, and the shell itself
if [ -d "$GPU_DIR/whl" ]; then
  timeout --kill-after=$KILL_AFTER $INSTALL_LIMIT "$PY" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/uvosam-site "$GPU_DIR"/whl/*.whl \
    || { echo "installing $GPU_DIR/whl failed or took over ${INSTALL_LIMIT} s"; exit 1; }
  export PYTHONPATH=/tmp/uvosam-site:$PWD
elif [ "$DRY" != 1 ]; then
  echo "$GPU_DIR/whl is missing: run 'bash scripts/gpu_prepare.sh' here first and carry .gpu (carry=[\".gpu\"])"
  echo "(without its wheels every step would fail on an import: segment-anything, pycocotools, imageio-ffmpeg, sam2)"
  exit 3
fi
if [ -d "$GPU_DIR/shared/fixtures" ]; then export UVOSAM_SHARED_DIR=$(cd "$GPU_DIR/shared" && pwd); fi

if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  SIZE=(--height 48 --width 64 --objects 3)
  E2E_ARGS=(--frames 8 16 "${SIZE[@]}")
  VARIANTS_ARGS=(--frames 8 8 "${SIZE[@]}" --variants-only --variants bf16 bf16+graph)
  SAM2_ARGS=(--sam sam2.1_large --frames 8 16 "${SIZE[@]}")  # the tiny SAM 2.1
  COMPILE_ARGS=(--frames 8 8 "${SIZE[@]}" --variants-only --variants tf32)  # a CPU compile would not fit: plumbing only
  MSDA_ARGS=""; MSDA_BLOCKS=""
  PROFILE_ARGS=(--warm 2 --frames 3 --height 48 --width 64 --objects 3 --top 5)
  ENCODER_ARGS=(--models sam2.1_tiny --fast --cuda-graph --repeats 1)  # real-size models on a CPU would not fit: plumbing only
else
  # --objects 3: SAM works on every frame, as with trained weights (the random-weight tracker finds few objects)
  DEVICE=cuda; SIZE=(--real-size --height 480 --width 854 --objects 3)
  E2E_ARGS=(--frames 100 200 "${SIZE[@]}" --release-repeats 1)
  VARIANTS_ARGS=(--frames 100 100 "${SIZE[@]}" --variants-only --variants bf16 bf16+graph)
  SAM2_ARGS=(--sam sam2.1_large --frames 50 100 "${SIZE[@]}")
  COMPILE_ARGS=(--frames 100 100 "${SIZE[@]}" --variants-only --variants bf16+compile)
  # --block-q 16 / 64: a little faster at batch 1 forward, slower at batch 10 and in every fwd+bwd on the H200
  # (ops/README.md): the automatic choice stays, the variants are not run again
  MSDA_ARGS="--iters 20"; MSDA_BLOCKS=""
  ENCODER_ARGS=(--models vit_h --device cuda --fast --cuda-graph --repeats 10)  # one model (eager and graph rows)
  PROFILE_ARGS=(--real-size --height 480 --width 854 --objects 3 --warm 20 --frames 20 --top 15)  # eager encoder
  timeout --kill-after=$KILL_AFTER $CUDA_LIMIT "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "no CUDA device here: this script is for the lent GPU machine (GPU_CHECK_DRY_RUN=1 to try it on CPU)"; exit 2; }
fi

step() {  # step NAME LIMIT_SECONDS CMD...: run CMD, output to $OUT/NAME.txt, report rc and time
  local name=$1 limit=$2; shift 2
  local start=$SECONDS rc
  if [ -n "$STEPS" ] && [[ " $STEPS " != *" $name "* ]]; then echo "== $name (not in GPU_CHECK_STEPS)"; return 0; fi
  if [ -z "$STEPS" ] && [[ " $ON_REQUEST " == *" $name "* ]]; then echo "== $name (only when GPU_CHECK_STEPS names it)"; return 0; fi
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=$KILL_AFTER "$limit" "$@" >"$OUT/$name.txt" 2>&1
  rc=$?
  echo "   rc=$rc after $((SECONDS - start)) s$([ $rc = 124 ] || [ $rc = 137 ] && echo ' (TIMED OUT)')"
  return 0
}

env_report() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 || true
  "$PY" - <<'PY'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda)
print("cudnn", torch.backends.cudnn.version(), "| SDPA cuDNN attention enabled:", torch.backends.cuda.cudnn_sdp_enabled())
try:
    import triton
    print("triton", triton.__version__)
except ImportError as exc:
    print("triton not importable:", exc)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, cc {p.major}.{p.minor}")
from uvosam.tracker import msda
print(msda.backend_status())
PY
}

msda_bench() {
  # shellcheck disable=SC2086  # word splitting of the option strings is meant
  "$PY" benchmarks/msda.py $MSDA_ARGS
  for block in $MSDA_BLOCKS; do
    echo "# --block-q $block"
    "$PY" benchmarks/msda.py --block-q "$block" --shapes encoder --dtypes fp32 --batch 1 10 $MSDA_ARGS
  done
}
export PY MSDA_ARGS MSDA_BLOCKS
export -f env_report msda_bench

step env 12 bash -c env_report
step gpu_tests 60 "$PY" -m pytest -v --durations=15 -m gpu -p no:cacheprovider tests/test_msda_kernel.py tests/test_gpu.py
step sam_encoder 40 "$PY" benchmarks/sam_encoders.py "${ENCODER_ARGS[@]}"
step e2e 150 "$PY" benchmarks/e2e.py --device "$DEVICE" "${E2E_ARGS[@]}"
step profile 40 "$PY" benchmarks/profile_frames.py --device "$DEVICE" "${PROFILE_ARGS[@]}"
step e2e_variants 95 "$PY" benchmarks/e2e.py --device "$DEVICE" "${VARIANTS_ARGS[@]}"
step e2e_sam2 55 "$PY" benchmarks/e2e.py --device "$DEVICE" "${SAM2_ARGS[@]}"
step msda 15 bash -c msda_bench
step e2e_compile 120 "$PY" benchmarks/e2e.py --device "$DEVICE" "${COMPILE_ARGS[@]}"

echo
echo "######## summary (full logs in $OUT)"
[ -f "$OUT/env.txt" ] && cat "$OUT/env.txt"
[ -f "$OUT/gpu_tests.txt" ] && echo "-- gpu_tests" && grep -E "passed|failed|FAILED|error|skipped|max abs error" "$OUT/gpu_tests.txt" | tail -n 15
[ -f "$OUT/sam_encoder.txt" ] && { echo "-- sam_encoder"; tail -n 8 "$OUT/sam_encoder.txt"; }
[ -f "$OUT/profile.txt" ] && { echo "-- profile"; grep -v -E "^(USDT|ERROR):" "$OUT/profile.txt" | head -n 30; }
[ -f "$OUT/msda.txt" ] && { echo "-- msda"; grep -E "^\||^#" "$OUT/msda.txt" | grep -v -- "|---" || tail -n 5 "$OUT/msda.txt"; }
for name in e2e e2e_variants e2e_sam2 e2e_compile; do  # without the JSON records and the stage legend
  [ -f "$OUT/$name.txt" ] && { echo "-- $name"; grep -v -E "^  (json|stages:)" "$OUT/$name.txt" | tail -n 25; }
done
exit 0
