#!/usr/bin/env bash
# After device.sh on the same machine: exports the checkpoint, evaluates it on the held-out tasks
# (.train-carry/heldout.jsonl from `repo-lens eval-tasks`, plus generated repository questions) and
# writes goldens for the engine test. Returns eval.json, eval.out and golden.tar under $OUT.
set -euo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 tools/train/export.py --weights .train/weights.bf16.pt --tokenizer .train/tokenizer.json --out .train/hf
python3 tools/train/evaluate.py --model .train/hf --tasks .train-carry/heldout.jsonl --repo-tasks "${1:-25}" \
  --out "$OUT/eval.json" --golden .train/golden 2>&1 | grep -v '^Loading' | tee "$OUT/eval.out"
tar cf "$OUT/golden.tar" -C .train golden
