#!/usr/bin/env python3
"""How far transformers' own bf16 forward lies from its float32 golden on the test fixtures: the
yardstick for forward_check's cuda-half rows (PrefillPrecision::Half rounds the prefill's operands to
16 bits, as a bf16 forward does). For each fixture under test/fixtures/models: the greedy ids of
golden.json in one forward, in float32 and in bfloat16 on the GPU; max |logit - golden| of each and
the logits' largest magnitude, one JSON line per fixture. Run from the repository root."""
import json
import os

import numpy as np
import torch
from transformers import AutoModelForCausalLM

FIXTURES = 'test/fixtures/models'

for name in sorted(os.listdir(FIXTURES)):
    folder = os.path.join(FIXTURES, name)
    golden_path = os.path.join(folder, 'golden.json')
    if not os.path.exists(golden_path):
        continue
    golden = json.load(open(golden_path))
    expected = np.fromfile(os.path.join(folder, golden['logits_file']), dtype=np.float32).reshape(golden['logits_shape'])
    ids = torch.tensor([golden['greedy_ids']], device='cuda')
    row = {'fixture': name, 'logits_max_abs': float(np.abs(expected).max())}
    for label, dtype in (('float32', torch.float32), ('bfloat16', torch.bfloat16)):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to('cuda').eval()
        with torch.inference_mode():
            logits = model(ids).logits[0].float().cpu().numpy()
        row[f'{label}_max_abs_diff'] = float(np.abs(logits - expected).max())
        p = len(golden['prompt_ids'])  # the ids after the prompt are greedy: each the argmax of the previous position
        row[f'{label}_greedy_same'] = bool((logits.argmax(-1)[p - 1:-1] == np.array(golden['greedy_ids'][p:])).all())
    print(json.dumps(row), flush=True)
