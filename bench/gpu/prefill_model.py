#!/usr/bin/env python3
"""A small random-weight Qwen2 model whose attention takes the CUDA backend's prefill kernel (head dim
128, 6 query heads per KV head as in Qwen2.5-Coder-1.5B; the fixtures' head dims 8 and 16 take the
simple kernel), with transformers' float32 logits, written as a bench/gpu/forward_check spec:
  python3 bench/gpu/prefill_model.py OUT_DIR  ->  OUT_DIR/qwen2-hd128.spec (+ weights.bin, logits.f32)
The reference: a prompt of PROMPT random ids, greedy decoding to TOTAL ids, every position's logits,
computed on the CPU in float32 (the bf16 weights upcast, as our engine computes). forward_check then
runs the whole sequence in one forward (a TOTAL-token prefill), decodes from the prompt, and continues
forked / imported / truncated prefixes (chunks after a cached prefix).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import random_model  # noqa: E402

SHAPE = dict(hidden=768, inter=256, layers=2, heads=6, kv_heads=1, head_dim=128, vocab=256, max_positions=4096,
             eps=1e-6, rope_theta=1e6)
PROMPT, TOTAL = 40, 300


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: python3 bench/gpu/prefill_model.py OUT_DIR')
    out = sys.argv[1]
    spec = random_model.write_model(out, SHAPE, device='cpu', seed=1)
    model = random_model.transformers_model(spec, SHAPE, torch.float32, 'eager')  # float32: the bf16 weights upcast
    gen = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, SHAPE['vocab'], (1, PROMPT), generator=gen)
    with torch.no_grad():
        ids = model.generate(prompt, max_new_tokens=TOTAL - PROMPT, do_sample=False, min_new_tokens=TOTAL - PROMPT)
        logits = model(ids).logits[0].float()  # [TOTAL][vocab]
    logits_path = os.path.join(out, 'logits.f32')
    logits.numpy().astype(np.float32).tofile(logits_path)
    id_list = ids[0].tolist()
    named = os.path.join(out, 'qwen2-hd128.spec')
    with open(spec) as f, open(named, 'w') as g:
        g.write(f.read())
        g.write(f'logits {logits_path}\n')
        g.write(f'ids {len(id_list)} {" ".join(map(str, id_list))}\n')
        g.write(f'prompt {PROMPT} {" ".join(map(str, id_list[:PROMPT]))}\n')
        g.write(f'greedy {len(id_list)} {" ".join(map(str, id_list))}\n')
    os.remove(spec)
    print(named)


if __name__ == '__main__':
    main()
