#!/usr/bin/env python3
"""Where transformers' prefill spends the GPU, for setting beside bench/gpu/timeline.py --totals of ours:
one prefill of N tokens of the random model with Qwen2.5-Coder-1.5B's shape (bf16, sdpa, the fused
kernels e2e.py allows), unprofiled first, then under torch.profiler with kernel time summed by name.

  python3 bench/gpu/transformers_prefill_kernels.py MODEL_DIR N [N ...]

MODEL_DIR holds random_model.py's files (python3 bench/gpu/random_model.py MODEL_DIR). Run from the
repository root on a CUDA GPU with PyTorch and transformers.
"""
import collections
import os
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.dirname(__file__))
import random_model  # noqa: E402


def prefill(model, n, device):
    """Seconds of one prefill of n random ids (logits of the last position only)."""
    from transformers import DynamicCache
    ids = torch.randint(0, random_model.QWEN_1_5B['vocab'], (1, n), device=device, generator=torch.Generator(device=device).manual_seed(1))
    cache = DynamicCache(config=model.config)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    device = torch.device('cuda')
    spec = os.path.join(sys.argv[1], random_model.SPEC_NAME)
    model = random_model.transformers_model(spec, random_model.QWEN_1_5B, torch.bfloat16, 'sdpa', device)
    prefill(model, 256, device)  # warm-up, as e2e.py's
    for n in map(int, sys.argv[2:]):
        plain = prefill(model, n, device)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            prefill(model, n, device)
        total, count = collections.Counter(), collections.Counter()
        for e in prof.events():
            if e.device_type == torch.autograd.DeviceType.CUDA:
                total[e.name[:90]] += e.device_time_total
                count[e.name[:90]] += 1
        whole = sum(total.values()) or 1
        print(f'== transformers prefill of {n} tokens: {plain:.3f} s unprofiled; kernels {whole / 1e6:.3f} s')
        for name, us in total.most_common(25):
            print(f'{us / 1e3:10.2f} ms {us / whole:6.1%} {count[name]:6d}  {name}')


if __name__ == '__main__':
    main()
