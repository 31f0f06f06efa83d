"""Dense accuracy of the exported model in transformers, on held-out tasks, and goldens for the engine.

Tasks:
  --tasks FILE   JSONL from `repo-lens eval-tasks` (passkey, kv-retrieval, variable-tracking,
                 where-defined), prompted exactly as src/eval/run.ts does: <s> + context + question.
  --where-words train,real  where-defined in the eval's repository style and prompt, names from
                 training words or from real identifiers' words (where_tasks)
  --repo-tasks N per length: repository questions over generated repositories (where defined ->
                 path, path:line; value of a constant; which function calls), with identifiers from
                 tasks.HELDOUT_WORDS (never used for generated code in training) and new seeds,
                 prompted as the extension's ask pipeline does (ask form, chat template).
Greedy decoding in fp32, up to 48 new tokens, stops at </s>. Correct = the answer contains the
expected text (src/eval/tasks.ts isCorrect); exact = equal after trimming.

  python3 tools/train/evaluate.py --model models/repo-lens-code --tasks heldout.jsonl --out results.json
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import corpus  # noqa: E402
import tasks  # noqa: E402

GOLDEN_NEW_TOKENS = 24


def norm(s):
    return ' '.join(s.lower().split())


def greedy(model, ids, max_new, eos):
    out = model.generate(torch.tensor([ids], device=model.device), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=eos, pad_token_id=eos)
    return out[0, len(ids):].tolist()


def repo_tasks(tok, lengths, n, seed):
    tok_len = lambda text: len(tok.encode(text, add_special_tokens=False).ids)
    out = []
    for length in lengths:
        for i in range(n):
            r = random.Random(f'heldout/{seed}/{length}/{i}')
            while True:
                s = tasks.repo_sample(r, tok_len, length - 200, [], tasks.HELDOUT_WORDS, 1, style='mixed')
                if s.qas:
                    break
            q, a = s.qas[0]
            kind = ('where-defined-line' if 'path:line' in q else 'constant-value' if 'constant' in q or 'set to' in q
                    else 'caller' if 'calls' in q else 'where-defined-ask')
            ids, cls = tasks.encode(tok, s, ask_form=True)
            first_answer = cls.index(tasks.ANSWER)
            out.append({'id': f'{kind}-{length}-{i}', 'kind': kind, 'targetTokens': length, 'answer': a,
                        'prompt_ids': ids[:first_answer]})
    return out


def where_tasks(tok, lengths, n, seed, word_set):
    """Where-defined questions in the eval's repository style (tasks.py's 'simple'), prompted as the
    eval prompts (context, then the question), with names made of `word_set`: 'train' (40 training
    words, one token each) or 'real' (40 words of real identifiers, which the tokenizer splits as it
    splits the eval's words; from the fifth that training leaves out). The two differ only in the words: a check of whether the words' split
    is what the 16K lookups miss on."""
    tok_len = lambda text: len(tok.encode(text, add_special_tokens=False).ids)
    pool = tasks.TRAIN_WORDS if word_set == 'train' else tasks.real_words(corpus.python_files(3_000_000, seed), held_out=True)
    out = []
    for length in lengths:
        for i in range(n):
            r = random.Random(f'where/{word_set}/{seed}/{length}/{i}')
            while True:
                s = tasks.repo_sample(r, tok_len, length - 200, [], r.sample(pool, 40), 1, style='simple', where_only=True)
                if s.qas:
                    break
            q, a = s.qas[0]
            prompt = f'{s.context}\n\nQuestion: {q}\nAnswer:'
            out.append({'id': f'where-{word_set}-{length}-{i}', 'kind': f'where-{word_set}-words', 'targetTokens': length,
                        'answer': a, 'prompt_ids': tok.encode(prompt, add_special_tokens=True).ids})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--tasks')
    ap.add_argument('--repo-tasks', type=int, default=0)
    ap.add_argument('--lengths', default='2048,4096,8192,16128')
    ap.add_argument('--seed', type=int, default=1001)
    ap.add_argument('--out', required=True)
    ap.add_argument('--golden', help='write goldens for the engine test here (a folder)')
    ap.add_argument('--where-words', default='', help='train,real: where_tasks() per word set, --where-tasks a length')
    ap.add_argument('--where-tasks', type=int, default=25)
    args = ap.parse_args()
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    tok = Tokenizer.from_file(os.path.join(args.model, 'tokenizer.json'))
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(dev).eval()
    eos = tok.token_to_id(tasks.EOS)
    items = []
    if args.tasks:
        for line in open(args.tasks):
            t = json.loads(line)
            prompt = f"{t['context']}\n\nQuestion: {t['question']}\nAnswer:"
            items.append({'id': t['id'], 'kind': t['kind'], 'targetTokens': t['targetTokens'], 'answer': t['answer'],
                          'prompt_ids': tok.encode(prompt, add_special_tokens=True).ids})
    if args.repo_tasks:
        items += repo_tasks(tok, [int(x) for x in args.lengths.split(',')], args.repo_tasks, args.seed)
    for word_set in filter(None, args.where_words.split(',')):
        items += where_tasks(tok, [int(x) for x in args.lengths.split(',')], args.where_tasks, args.seed, word_set)
    results, t0 = [], time.time()
    with torch.no_grad():
        for it in items:
            got = greedy(model, it['prompt_ids'], 48, eos)
            text = tok.decode([x for x in got if x != eos], skip_special_tokens=True)
            results.append({'id': it['id'], 'kind': it['kind'], 'targetTokens': it['targetTokens'],
                            'promptTokens': len(it['prompt_ids']), 'answer': it['answer'], 'generated': text,
                            'correct': norm(it['answer']) in norm(text), 'exact': text.strip() == it['answer'].strip()})
    table = {}
    for r in results:
        key = (r['kind'], r['targetTokens'])
        c, e, n = table.get(key, (0, 0, 0))
        table[key] = (c + r['correct'], e + r['exact'], n + 1)
    rows = [{'kind': k, 'targetTokens': L, 'tasks': n, 'accuracy': c / n, 'exact': e / n}
            for (k, L), (c, e, n) in sorted(table.items())]
    report = {'model': args.model, 'device': torch.cuda.get_device_name() if dev == 'cuda' else 'cpu',
              'torch': torch.__version__, 'seconds': round(time.time() - t0), 'rows': rows, 'results': results}
    json.dump(report, open(args.out, 'w'), indent=1)
    for row in rows:
        print(f"{row['kind']:22s} {row['targetTokens']:6d} n={row['tasks']:3d} acc={row['accuracy']:.3f} exact={row['exact']:.3f}")
    if args.golden:
        write_goldens(model, tok, items, args.golden, eos)


def write_goldens(model, tok, items, folder, eos):
    """fp32 logits of transformers on CPU for two short held-out prompts (one per prompt form)."""
    os.makedirs(folder, exist_ok=True)
    cpu = model.to('cpu')
    picks = [next(it for it in items if it['kind'] == 'kv-retrieval' and it['targetTokens'] == min(x['targetTokens'] for x in items)),
             next(it for it in items if it['kind'] == 'constant-value')]
    out = []
    for n, it in enumerate(picks):
        ids = it['prompt_ids']
        gen = greedy(cpu, ids, GOLDEN_NEW_TOKENS, eos)
        full = ids + gen
        with torch.no_grad():
            logits = cpu(input_ids=torch.tensor([full])).logits[0]          # [positions, vocab]
        positions = [0, len(ids) // 2, len(ids) - 1] + list(range(len(ids), len(full) - 1))
        logits[positions].numpy().astype('<f4').tofile(os.path.join(folder, f'golden-{n}.f32'))
        out.append({'task': it['id'], 'ids': full, 'prompt_tokens': len(ids), 'positions': positions,
                    'logits_file': f'golden-{n}.f32', 'logits_shape': [len(positions), logits.shape[1]]})
    json.dump({'transformers_dtype': 'float32', 'device': 'cpu', 'goldens': out}, open(os.path.join(folder, 'golden.json'), 'w'))
    print(f'goldens: {len(out)} prompts -> {folder}')


if __name__ == '__main__':
    main()
