#!/usr/bin/env python3
"""A random-weight model with Qwen2.5-Coder-1.5B's shape (bf16, q/k/v bias, tied embeddings): one
raw file of bf16 tensors plus the plain-text spec bench/gpu/forward_check.cc reads (--time mode).
bench/gpu/e2e.py loads the same file into transformers' Qwen2ForCausalLM (transformers_model).
The positions go to 128K + 4K (the model's config says 32K; RoPE needs no change for a benchmark).
  python3 bench/gpu/random_model.py OUT_DIR   (run from the repository root; needs PyTorch and a GPU)
"""
import os
import sys

import numpy as np
import torch

QWEN_1_5B = dict(hidden=1536, inter=8960, layers=28, heads=12, kv_heads=2, head_dim=128, vocab=151936,
                 max_positions=131072 + 4096, eps=1e-6, rope_theta=1e6)
SPEC_NAME = 'qwen2.5-1.5b-shape.spec'


def tensor_shapes(s):
    """(name, shape) of every tensor, in file order (transformers' names)."""
    q, kv = s['heads'] * s['head_dim'], s['kv_heads'] * s['head_dim']
    hidden, inter = s['hidden'], s['inter']
    shapes = [('model.embed_tokens.weight', (s['vocab'], hidden))]
    for l in range(s['layers']):
        p = f'model.layers.{l}.'
        shapes += [(p + 'input_layernorm.weight', (hidden,)), (p + 'self_attn.q_proj.weight', (q, hidden)),
                   (p + 'self_attn.k_proj.weight', (kv, hidden)), (p + 'self_attn.v_proj.weight', (kv, hidden)),
                   (p + 'self_attn.q_proj.bias', (q,)), (p + 'self_attn.k_proj.bias', (kv,)),
                   (p + 'self_attn.v_proj.bias', (kv,)), (p + 'self_attn.o_proj.weight', (hidden, q)),
                   (p + 'post_attention_layernorm.weight', (hidden,)), (p + 'mlp.gate_proj.weight', (inter, hidden)),
                   (p + 'mlp.up_proj.weight', (inter, hidden)), (p + 'mlp.down_proj.weight', (hidden, inter))]
    shapes.append(('model.norm.weight', (hidden,)))
    return shapes


def file_bytes(s):
    return sum(2 * int(np.prod(shape)) for _, shape in tensor_shapes(s))


def write_model(out, s=QWEN_1_5B, device='cuda', seed=0):
    """Writes OUT/weights.bin and OUT/SPEC_NAME; returns the spec's path. Matrices ~ N(0, 1/fan_in), vectors ~ N(0, 1)."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, 'weights.bin')
    gen = torch.Generator(device=device).manual_seed(seed)
    lines = [f"arch {s['hidden']} {s['inter']} {s['layers']} {s['heads']} {s['kv_heads']} {s['head_dim']} {s['vocab']} "
             f"{s['max_positions']} {s['eps']:g} {s['rope_theta']:g} 1 1 0 1 1 4 8192",
             'block_size 32', f"context {s['max_positions']}"]
    offset = 0
    with open(path, 'wb') as f:
        for name, shape in tensor_shapes(s):
            scale = 1.0 if len(shape) == 1 else shape[1] ** -0.5
            t = (torch.randn(shape, device=device, generator=gen) * scale).to(torch.bfloat16).cpu()
            data = t.view(torch.int16).numpy().tobytes()
            f.write(data)
            lines.append(f'tensor {name} {path} BF16 {offset} {offset + len(data)} {len(shape)} {" ".join(map(str, shape))}')
            offset += len(data)
    spec = os.path.join(out, SPEC_NAME)
    with open(spec, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return spec


def read_tensors(spec_path):
    """The spec's tensors as bf16 CPU tensors (views of the memory-mapped file), by name."""
    tensors, maps = {}, {}
    with open(spec_path) as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] != 'tensor':
                continue
            name, path, dtype, begin, end, dims = parts[1], parts[2], parts[3], int(parts[4]), int(parts[5]), int(parts[6])
            if dtype != 'BF16':
                raise ValueError(f'{spec_path}: {name} is {dtype}, expected BF16')
            shape = tuple(int(d) for d in parts[7:7 + dims])
            if path not in maps:
                maps[path] = np.memmap(path, dtype=np.int16, mode='r')
            raw = maps[path][begin // 2:end // 2]
            tensors[name] = torch.from_numpy(np.array(raw)).view(torch.bfloat16).reshape(shape)
    return tensors



def transformers_model(spec_path, s, dtype, attn_implementation, device='cpu'):
    """transformers' Qwen2ForCausalLM of shape `s` holding the spec's weights in `dtype` (lm_head tied
    to the embeddings), in eval mode without gradients: the peer e2e.py times and prefill_model.py's
    reference."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    config = Qwen2Config(vocab_size=s['vocab'], hidden_size=s['hidden'], intermediate_size=s['inter'],
                         num_hidden_layers=s['layers'], num_attention_heads=s['heads'], num_key_value_heads=s['kv_heads'],
                         max_position_embeddings=s['max_positions'], rms_norm_eps=s['eps'],
                         rope_parameters={'rope_type': 'default', 'rope_theta': s['rope_theta']}, tie_word_embeddings=True,
                         use_sliding_window=False)
    with torch.device(device):
        model = Qwen2ForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    missing, unexpected = model.load_state_dict(read_tensors(spec_path), strict=False)
    if unexpected or set(missing) != {'lm_head.weight'}:
        raise RuntimeError(f'{spec_path}: the weights do not fit Qwen2ForCausalLM: missing {missing}, unexpected {unexpected}')
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise RuntimeError('lm_head is not tied to the embeddings')
    return model.eval().requires_grad_(False)


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: python3 bench/gpu/random_model.py OUT_DIR')
    spec = write_model(sys.argv[1])
    print(f'{spec}: {file_bytes(QWEN_1_5B) / 1e9:.2f} GB of weights')


if __name__ == '__main__':
    main()
