"""Writes a training checkpoint as the Hugging Face folder Repo Lens ships (models/repo-lens-code):
config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json (with the chat template),
generation_config.json. Checks that transformers loads the folder and gives the logits of the
checkpoint's weights rounded to bf16.

    python3 tools/train/export.py --weights .train/run/weights.pt --tokenizer .train/tokenizer.json --out models/repo-lens-code
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import train  # noqa: E402

# Renders, for a system message S, a user message U and the generation prompt:
#   <s>S\n\nU\nAnswer:
# which is the ask prompt the model was trained on (tasks.py): the ask pipeline's user content is the
# repository's files followed by "\nQuestion: <question>".
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' %}{{ message['content'] }}"
    "{%- elif message['role'] == 'assistant' %}{{ '\\nAnswer: ' + message['content'] + eos_token }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '\\nAnswer:' }}{%- endif %}"
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--weights', required=True, help='a state dict (fp32) or a train.py checkpoint')
    ap.add_argument('--tokenizer', required=True)
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM
    state = torch.load(args.weights, map_location='cpu')
    state = state.get('model', state)
    shape = argparse.Namespace(smoke=state['model.embed_tokens.weight'].shape[1] != train.MODEL['hidden_size'], seed=0)
    heads = (train.SMOKE_MODEL if shape.smoke else train.MODEL)['num_attention_heads']
    model = train.build_model(shape, kv_heads=train.kv_heads_of(state, heads))
    model.load_state_dict(state)
    model = model.to(torch.bfloat16)
    model.config.dtype = 'bfloat16'
    model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tok = json.load(open(args.tokenizer))
    json.dump(tok, open(os.path.join(args.out, 'tokenizer.json'), 'w'), ensure_ascii=False)
    json.dump({
        'tokenizer_class': 'PreTrainedTokenizerFast', 'bos_token': '<s>', 'eos_token': '</s>', 'pad_token': '<pad>',
        'unk_token': '<unk>', 'clean_up_tokenization_spaces': False, 'model_max_length': train.MODEL['max_position_embeddings'], 'chat_template': CHAT_TEMPLATE,
    }, open(os.path.join(args.out, 'tokenizer_config.json'), 'w'), indent=1)

    loaded = AutoModelForCausalLM.from_pretrained(args.out, dtype=torch.float32)
    # The reference: a float32 model holding the weights rounded to bf16 (converting `model` back would
    # also round its RoPE frequencies).
    reference = train.build_model(shape, kv_heads=model.config.num_key_value_heads)
    reference.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in state.items()})
    ids = torch.tensor([[1] + list(range(10, 200))])
    with torch.no_grad():
        want = reference(input_ids=ids).logits
        got = loaded(input_ids=ids).logits
    err = (want - got).abs().max().item()
    print(f'exported to {args.out}; transformers reload max |Δlogit| {err:.2e}')
    assert err < 1e-4, err


if __name__ == '__main__':
    main()
