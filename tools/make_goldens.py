"""Goldens from Hugging Face transformers, for the engine's and the tokenizer's tests.

Run on a machine with PyTorch and transformers (the project's CUDA machine has both):

    python3 tools/make_goldens.py --out test/fixtures \
        --tokenizer stories260K=PATH/TO/stories260K/hf --tokenizer qwen3=PATH/TO/qwen3-tokenizer-dir

It writes, under --out:
  models/<name>/            a small random-weight model as a Hugging Face folder (config.json,
                            safetensors, sharded for one of them), at a real architecture's shape
  models/<name>/golden.json prompt ids, greedy ids, and where the logits are
  models/<name>/logits.f32  transformers' fp32 logits, [positions, vocab] little-endian float32
  tokenizers/<name>.json    strings and the ids transformers' tokenizer gives them

Everything is computed on the CPU in float32 so the goldens do not depend on GPU math modes.
"""

import argparse
import json
import os
import random

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, MistralConfig, Qwen2Config

SEED = 1234
PROMPT_LEN = 8
NEW_TOKENS = 64


def fixture_configs():
    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  rms_norm_eps=1e-5, initializer_range=0.25, bos_token_id=1, eos_token_id=2)
    return {
        # Llama 3: llama3 RoPE scaling, large theta, untied embeddings, bf16 weights.
        "llama3": ("bfloat16", None, LlamaConfig(
            **common, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            rope_theta=500000.0, tie_word_embeddings=False,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64})),
        # Qwen2: bias on q/k/v, tied embeddings, fp16 weights.
        "qwen2": ("float16", None, Qwen2Config(
            **common, num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
            rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False)),
        # Mistral: head_dim unlike hidden/heads, GQA 4:1, fp32 weights in sharded safetensors.
        "mistral": ("float32", "120KB", MistralConfig(
            **common, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False,
            sliding_window=None)),
    }


def make_model(name, dtype, shard, config, out):
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    # Random biases too (transformers initialises them to zero), so the bias path is exercised.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.normal_(0.0, 0.5)
            elif "norm" in n:
                p.uniform_(0.5, 1.5)
    folder = os.path.join(out, "models", name)
    os.makedirs(folder, exist_ok=True)
    model.to(getattr(torch, dtype))
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    model.save_pretrained(folder, **kwargs)

    # Reload what was written, computed in float32 exactly as our engine does.
    ref = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    ref.eval()
    rng = random.Random(SEED)
    prompt = [1] + [rng.randrange(3, config.vocab_size) for _ in range(PROMPT_LEN - 1)]
    with torch.no_grad():
        out_ids = ref.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False,
                               eos_token_id=None, pad_token_id=0)[0].tolist()
        logits = ref(torch.tensor([out_ids])).logits[0].float().numpy()  # [positions, vocab]
    top2 = np.sort(logits, axis=-1)[:, -2:]
    logits.astype("<f4").tofile(os.path.join(folder, "logits.f32"))
    golden = {
        "transformers": transformers.__version__, "torch": torch.__version__,
        "weights_dtype": dtype, "prompt_ids": prompt, "greedy_ids": out_ids,
        "logits_file": "logits.f32", "logits_shape": list(logits.shape),
        "min_top2_gap": float((top2[:, 1] - top2[:, 0]).min()),
    }
    with open(os.path.join(folder, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    print(name, dtype, "positions", logits.shape[0], "min top-2 gap", golden["min_top2_gap"])


TOKENIZER_STRINGS = [
    "Once upon a time",
    "",
    " ",
    "Hello, world!",
    "def add(a, b):\n    return a + b\n",
    "for (let i = 0; i < n; i++) {\n\tsum += xs[i];\n}",
    "    four spaces,\ttab,\n\n\nthree newlines   and    runs     ",
    "naïve café — déjà vu, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어, emoji 🙂🚀👩‍💻",
    "<s>special</s> tokens <|im_start|>user\nhi<|im_end|> <|endoftext|>",
    "x = 0x1F; y = 3.14e-10; z = \"quoted \\\"string\\\"\"",
    "   leading and trailing   ",
    "CamelCaseIdentifier snake_case_identifier SCREAMING_CASE",
    "\u00a0non-breaking\u2003em-space\u200bzero-width",
]


def tokenizer_goldens(name, folder, out):
    tok = AutoTokenizer.from_pretrained(folder)
    cases = []
    for s in TOKENIZER_STRINGS:
        cases.append({
            "text": s,
            "ids": tok(s, add_special_tokens=False)["input_ids"],
            "ids_with_special": tok(s, add_special_tokens=True)["input_ids"],
        })
    result = {"transformers": transformers.__version__, "tokenizer": type(tok).__name__, "cases": cases}
    if getattr(tok, "chat_template", None):
        messages = [{"role": "user", "content": "Where is main defined?"}]
        result["chat"] = {"messages": messages,
                          "rendered": tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)}
    os.makedirs(os.path.join(out, "tokenizers"), exist_ok=True)
    with open(os.path.join(out, "tokenizers", name + ".json"), "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    print("tokenizer", name, len(cases), "cases")


def reference_logits(name, folder, ids, out):
    """fp32 logits of a real model at every position of `ids` (for tests beyond the shipped golden)."""
    ref = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        logits = ref(torch.tensor([ids])).logits[0].float().numpy()
    os.makedirs(os.path.join(out, "reference"), exist_ok=True)
    logits.astype("<f4").tofile(os.path.join(out, "reference", name + "-logits.f32"))
    with open(os.path.join(out, "reference", name + ".json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "ids": ids, "logits_shape": list(logits.shape)}, f)
    print("reference", name, logits.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", action="append", default=[], help="NAME=DIR")
    ap.add_argument("--reference", action="append", default=[], help="NAME=DIR=GOLDEN_JSON (its greedy_ids)")
    args = ap.parse_args()
    torch.set_num_threads(8)
    for name, (dtype, shard, config) in fixture_configs().items():
        make_model(name, dtype, shard, config, args.out)
    for spec in args.reference:
        name, folder, golden = spec.split("=", 2)
        with open(golden) as f:
            reference_logits(name, folder, json.load(f)["greedy_ids"], args.out)
    for spec in args.tokenizer:
        name, folder = spec.split("=", 1)
        tokenizer_goldens(name, folder, args.out)


if __name__ == "__main__":
    main()
