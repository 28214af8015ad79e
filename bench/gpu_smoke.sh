#!/usr/bin/env bash
# GPU smoke test and Janus-Pro bench, as one command for a machine with a CUDA GPU and no hub access.
#
#   bash bench/gpu_smoke.sh [OUT_DIR]      # default OUT_DIR: bench/out/gpu
#
# 1. The CLI end to end on CUDA with the embedded sandbox model: generate (twice, same seed: the PNGs must be
#    byte-identical), score, verify, one SRUM round, eval of that round.
# 2. A tiny random Janus saved with save_pretrained and loaded through the backend's from_pretrained path on CUDA:
#    one SRUM round on T2I-CompBench prompts.
# 3. bench.bench_janus_gpu on a full-size random Janus-Pro-1B (generation, judges, one LoRA round).
# Each step prints "ok: ..." or "FAILED: ..."; the script's exit status is the number of failed steps.
set -u
OUT_DIR=${1:-bench/out/gpu}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d)
FAILED=0
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu checks the script itself on a laptop (the Janus bench then runs --tiny)

step() {  # step NAME COMMAND...: run, time and report one step
    local name=$1
    shift
    local start=$SECONDS
    if "$@" >"$WORK/$name.log" 2>&1; then
        echo "ok: $name ($((SECONDS - start)) s)"
    else
        echo "FAILED: $name ($((SECONDS - start)) s)"
        tail -n 30 "$WORK/$name.log"
        FAILED=$((FAILED + 1))
    fi
    cp "$WORK/$name.log" "$OUT_DIR/$name.log" 2>/dev/null || true
}

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, transformers, diffusers, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| diffusers', diffusers.__version__, '| peft', peft.__version__, '| cuda', torch.cuda.is_available())"

PROMPT="a red circle to the left of a blue square"
step sandbox_generate $PY -m srum_core generate --backend sandbox --device "$DEVICE" --prompt "$PROMPT" --n 4 --seed 0 --out "$WORK/gen"
step sandbox_generate_again $PY -m srum_core generate --backend sandbox --device "$DEVICE" --prompt "$PROMPT" --n 4 --seed 0 --out "$WORK/gen2"
step sandbox_same_seed_same_pngs bash -c "cd '$WORK' && for f in gen/*.png; do cmp \"\$f\" \"gen2/\${f#gen/}\" || exit 1; done"
step sandbox_score $PY -m srum_core score --backend sandbox --device "$DEVICE" --images "$WORK/gen" --out "$WORK/records.jsonl"
step sandbox_verify $PY -m srum_core verify --images "$WORK/gen" --out "$WORK/verdicts.jsonl"
step sandbox_round $PY -m srum_core round --backend sandbox --device "$DEVICE" --prompts train --n-prompts 16 --steps 10 \
    --eval-n-prompts 4 --seed 0 --out "$WORK/sandbox_run"
step sandbox_eval $PY -m srum_core eval --backend sandbox --device "$DEVICE" --run "$WORK/sandbox_run" --split val \
    --n-prompts 8 --seed 0 --out "$WORK/sandbox_eval.json"
cp "$WORK/sandbox_eval.json" "$OUT_DIR/" 2>/dev/null || true

step tiny_janus_build $PY -c "from pathlib import Path; from tests.conftest_janus import build_tiny_janus; \
build_tiny_janus(Path('$WORK/tiny-janus'))"
step tiny_janus_round $PY -m srum_core round --backend janus --model "$WORK/tiny-janus" --device "$DEVICE" \
    --prompts t2i-compbench --n-prompts 8 --steps 2 --eval-split t2i-compbench --eval-n-prompts 1 --seed 0 \
    --out "$WORK/janus_run"

JANUS_SIZE=()
[ "$DEVICE" = cpu ] && JANUS_SIZE=(--tiny)
step janus_pro_1b_bench $PY -m bench.bench_janus_gpu --device "$DEVICE" "${JANUS_SIZE[@]}" --out "$OUT_DIR/janus_gpu.json"
cat "$OUT_DIR/janus_gpu.json" 2>/dev/null
echo "failed steps: $FAILED"
exit "$FAILED"
