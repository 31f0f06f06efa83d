#!/usr/bin/env python3
"""Writes a random-weight model with Qwen2.5-Coder-1.5B's shape (bf16, q/k/v bias, tied embeddings)
as one raw file plus the plain-text spec bench/gpu/forward_check.cc reads (--time mode).
  python3 bench/gpu/random_model.py OUT_DIR   (run from the repository root; needs PyTorch)
"""
import os
import sys

import torch

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB, MAX_POS = 1536, 8960, 28, 12, 2, 128, 151936, 32768


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, 'weights.bin')
    gen = torch.Generator(device='cuda').manual_seed(0)
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shapes = [('model.embed_tokens.weight', (VOCAB, HIDDEN))]
    for l in range(LAYERS):
        p = f'model.layers.{l}.'
        shapes += [(p + 'input_layernorm.weight', (HIDDEN,)), (p + 'self_attn.q_proj.weight', (q, HIDDEN)),
                   (p + 'self_attn.k_proj.weight', (kv, HIDDEN)), (p + 'self_attn.v_proj.weight', (kv, HIDDEN)),
                   (p + 'self_attn.q_proj.bias', (q,)), (p + 'self_attn.k_proj.bias', (kv,)),
                   (p + 'self_attn.v_proj.bias', (kv,)), (p + 'self_attn.o_proj.weight', (HIDDEN, q)),
                   (p + 'post_attention_layernorm.weight', (HIDDEN,)), (p + 'mlp.gate_proj.weight', (INTER, HIDDEN)),
                   (p + 'mlp.up_proj.weight', (INTER, HIDDEN)), (p + 'mlp.down_proj.weight', (HIDDEN, INTER))]
    shapes.append(('model.norm.weight', (HIDDEN,)))
    lines = [f'arch {HIDDEN} {INTER} {LAYERS} {HEADS} {KV_HEADS} {HEAD_DIM} {VOCAB} {MAX_POS} 1e-06 1000000 1 1 0 1 1 4 8192',
             'block_size 32', f'context {MAX_POS}']
    offset = 0
    with open(path, 'wb') as f:
        for name, shape in shapes:
            scale = 1.0 if len(shape) == 1 else shape[1] ** -0.5
            t = (torch.randn(shape, device='cuda', generator=gen) * scale).to(torch.bfloat16).cpu()
            data = t.view(torch.int16).numpy().tobytes()
            f.write(data)
            lines.append(f'tensor {name} {path} BF16 {offset} {offset + len(data)} {len(shape)} {" ".join(map(str, shape))}')
            offset += len(data)
    with open(os.path.join(out, 'qwen2.5-1.5b-shape.spec'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print(f'{path}: {offset / 1e9:.2f} GB')


if __name__ == '__main__':
    main()
