#!/usr/bin/env bash
# One training call on the GPU machine (at most 10 minutes):
#   bash tools/train/device.sh MINUTES TOTAL_STEPS [more train.py options]
# Resumes from .train/run/ckpt.pt when this machine still has it; otherwise from carried weights
# (.train-carry/weights.bf16.part-*, .train-carry/step), otherwise from $INIT (a folder or
# state dict) at step $INIT_STEP, otherwise from scratch. The tokenizer is the carried one, else the
# shipped model's, else trained first. Returns (under $OUT) the tokenizer, the logs and the bf16
# weights in parts of at most 15 MB.
set -euo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
minutes=$1 total=$2
shift 2
mkdir -p .train/run
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ ! -f .train/tokenizer.json ]; then
  if [ -f .train-carry/tokenizer.json ]; then cp .train-carry/tokenizer.json .train/
  elif [ -f models/repo-lens-code/tokenizer.json ]; then cp models/repo-lens-code/tokenizer.json .train/; else
    python3 tools/train/tokenizer.py --out .train/tokenizer.json; fi
fi
init=()
if [ ! -f .train/run/ckpt.pt ] && ls .train-carry/weights.bf16.part-* >/dev/null 2>&1; then
  cat .train-carry/weights.bf16.part-* > .train/init.pt
  init=(--init .train/init.pt --init-step "$(cat .train-carry/step)")
elif [ ! -f .train/run/ckpt.pt ] && [ -n "${INIT:-}" ]; then
  # Start weights that travel with the working tree: an exported folder (models/repo-lens-code) or a
  # state dict (.pt, or .pt.xz to fit the 64 MiB the tree may take; lm_head may be left out: it is tied).
  python3 - "$INIT" .train/init.pt <<'PY'
import lzma, io, os, sys, torch
src, dst = sys.argv[1:]
if os.path.isdir(src):
    from transformers import AutoModelForCausalLM
    sd = AutoModelForCausalLM.from_pretrained(src).state_dict()
else:
    sd = torch.load(io.BytesIO(lzma.open(src).read()) if src.endswith('.xz') else src, map_location='cpu')
sd.setdefault('lm_head.weight', sd['model.embed_tokens.weight'])
torch.save(sd, dst)
PY
  init=(--init .train/init.pt --init-step "${INIT_STEP:?INIT_STEP: the step the start weights were trained to}")
fi
python3 tools/train/train.py --out .train/run --tokenizer .train/tokenizer.json --minutes "$minutes" \
  --total-steps "$total" "${init[@]}" "$@" 2>&1 | tee -a .train/run/train.out
python3 - <<'PY'
import torch
ck = torch.load('.train/run/ckpt.pt', map_location='cpu')
torch.save({k: v.to(torch.bfloat16) for k, v in ck['model'].items()}, '.train/weights.bf16.pt')
open('.train/step', 'w').write(str(ck['step']))
PY
cp .train/tokenizer.json .train/run/log.jsonl .train/run/train.out .train/step "$OUT/"
split -b 15M .train/weights.bf16.pt "$OUT/weights.bf16.part-"
ls -la "$OUT"
