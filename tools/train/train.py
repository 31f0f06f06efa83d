"""Trains the default model: a small Llama (GQA, RoPE theta 1e6, RMSNorm, SwiGLU) on real code and
generated repository tasks, up to 16K tokens.

Runs in calls of at most --minutes: each call resumes from OUT/ckpt.pt (model, optimizer, step) when
it exists, trains, and checkpoints atomically before its time is up. The batch of step s is a pure
function of (seed, s) (tasks.py with a Random seeded from both), so a resumed run sees exactly the
data an uninterrupted one would.

    python3 tools/train/train.py --out .train/run --tokenizer .train/tokenizer.json --minutes 9
"""
import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(__file__))
import corpus  # noqa: E402
import tasks  # noqa: E402

MODEL = dict(vocab_size=8192, hidden_size=384, intermediate_size=1024, num_hidden_layers=8, num_attention_heads=6,
             num_key_value_heads=2, max_position_embeddings=16384, rope_theta=1e6, rms_norm_eps=1e-5,
             tie_word_embeddings=True)
SMOKE_MODEL = dict(MODEL, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=1)
TOKENS_PER_STEP = 65536


def length_mix(progress: float) -> list:
    """(length, probability): short contexts first, 16K in the last part."""
    if progress < 0.25:
        return [(1024, 0.4), (2048, 0.4), (4096, 0.2)]
    if progress < 0.55:
        return [(2048, 0.3), (4096, 0.4), (8192, 0.3)]
    return [(4096, 0.2), (8192, 0.4), (16384, 0.4)]


def step_length(seed: int, step: int, total: int, max_len: int, fixed_mix=None) -> int:
    r = random.Random(f'len/{seed}/{step}')
    x, acc = r.random(), 0.0
    for length, p in fixed_mix or length_mix(step / total):
        acc += p
        if x < acc:
            return min(length, max_len)
    return min(length_mix(step / total)[-1][0], max_len)


class Batches(torch.utils.data.IterableDataset):
    """Batches of steps start, start+1, ...; DataLoader workers take every n-th step in turn."""

    def __init__(self, args, start: int):
        self.args, self.start = args, start
        self.files = corpus.load(args.js_corpus, args.python_chars, args.js_chars, args.seed) if not args.no_code else []

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, n = (info.id, info.num_workers) if info else (0, 1)
        if self.args.task_mix:
            tasks.MIX = self.args.task_mix
        tok = Tokenizer.from_file(self.args.tokenizer)
        tok_len = lambda text: len(tok.encode(text, add_special_tokens=False).ids)
        pad = tok.token_to_id(tasks.PAD)
        step = self.start + wid
        while True:
            length = step_length(self.args.seed, step, self.args.total_steps, self.args.max_len, self.args.length_mix)
            rows = max(1, self.args.tokens_per_step // length)
            ids = torch.full((rows, length), pad, dtype=torch.int32)
            cls = torch.zeros((rows, length), dtype=torch.int8)
            for i in range(rows):
                r = random.Random(f'sample/{self.args.seed}/{step}/{i}')
                target = length
                while True:
                    s = tasks.training_sample(r, tok_len, target, self.files)
                    x, c = tasks.encode(tok, s, ask_form=r.random() < 0.5)
                    if len(x) <= length:
                        break
                    target -= max(64, len(x) - length)
                ids[i, :len(x)] = torch.tensor(x, dtype=torch.int32)
                cls[i, :len(c)] = torch.tensor(c, dtype=torch.int8)
            yield step, ids, cls
            step += n


def lr_at(step: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = min(1.0, (step - args.warmup) / max(1, args.total_steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def build_model(args, kv_heads=None):
    from transformers import LlamaConfig, LlamaForCausalLM
    shape = dict(SMOKE_MODEL if args.smoke else MODEL)
    if kv_heads or getattr(args, 'kv_heads', None):
        shape['num_key_value_heads'] = kv_heads or args.kv_heads
    cfg = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=3, attn_implementation='sdpa')
    torch.manual_seed(args.seed)
    return LlamaForCausalLM(cfg)


def kv_heads_of(state: dict, heads: int) -> int:
    head_dim = state['model.embed_tokens.weight'].shape[1] // heads
    return state['model.layers.0.self_attn.k_proj.weight'].shape[0] // head_dim


def grow_kv_heads(state: dict, args, model) -> dict:
    """Start weights with fewer KV heads than `model`, grown to its count: each KV head's k/v rows copied
    to every new head that serves one of the query heads it served (transformers' repeat_kv order), so
    the grown model computes the same function; training then tells the copies apart."""
    cfg = model.config
    old, new = kv_heads_of(state, cfg.num_attention_heads), cfg.num_key_value_heads
    if old == new:
        return state
    if new % old:
        sys.exit(f'train.py: cannot grow {old} KV heads to {new}: not a multiple')
    hd = cfg.hidden_size // cfg.num_attention_heads
    grown = dict(state)
    for k, v in state.items():
        if k.endswith(('self_attn.k_proj.weight', 'self_attn.v_proj.weight')):
            grown[k] = v.view(old, hd, -1).repeat_interleave(new // old, dim=0).reshape(new * hd, -1)
    before = build_model(args, kv_heads=old)
    before.load_state_dict({k: v.float() for k, v in state.items()})
    after = build_model(args, kv_heads=new)
    after.load_state_dict({k: v.float() for k, v in grown.items()})
    ids = torch.tensor([[1] + list(range(10, 300))])
    with torch.no_grad():
        err = (before(input_ids=ids).logits - after(input_ids=ids).logits).abs().max().item()
    print(f'grew KV heads {old} -> {new}: max |dlogit| {err:.2e} against the start weights', flush=True)
    if err > 1e-4:
        sys.exit(f'train.py: growing the KV heads changed the logits by {err}')
    return grown


def losses(model, ids, cls):
    """Mean next-token loss over context tokens and over answer tokens, and answer-token accuracy."""
    logits = model(input_ids=ids).logits[:, :-1].float()          # [B, L-1, V]
    target, c = ids[:, 1:].long(), cls[:, 1:]                      # [B, L-1]
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), reduction='none').view_as(target)
    ctx, ans = c == tasks.CONTEXT, c == tasks.ANSWER
    ctx_loss = (ce * ctx).sum() / ctx.sum().clamp(min=1)
    ans_loss = (ce * ans).sum() / ans.sum().clamp(min=1)
    ans_acc = ((logits.argmax(-1) == target) & ans).sum() / ans.sum().clamp(min=1)
    return ctx_loss, ans_loss, ans_acc


def save(path, model, opt, step, args):
    tmp = path + '.tmp'
    torch.save({'model': model.state_dict(), 'opt': opt.state_dict(), 'step': step, 'args': vars(args)}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--tokenizer', required=True)
    ap.add_argument('--js-corpus', default='.train-data/js.jsonl.gz')
    ap.add_argument('--python-chars', type=int, default=60_000_000)
    ap.add_argument('--js-chars', type=int, default=25_000_000)
    ap.add_argument('--no-code', action='store_true', help='generated files only (fast start for tests)')
    ap.add_argument('--minutes', type=float, default=9.0, help='stop and checkpoint after this long')
    ap.add_argument('--total-steps', type=int, default=4000)
    ap.add_argument('--stop-step', type=int, default=None, help='stop at this step (default: total)')
    ap.add_argument('--tokens-per-step', type=int, default=TOKENS_PER_STEP)
    ap.add_argument('--max-len', type=int, default=16384)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--warmup', type=int, default=200)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--length-mix', type=lambda s: [(int(a), float(b)) for a, b in (x.split(':') for x in s.split(','))],
                    help='LEN:P,... instead of the curriculum (e.g. 2048:0.5,16384:0.5)')
    ap.add_argument('--task-mix', type=lambda s: [(a, float(b)) for a, b in (x.split(':') for x in s.split(','))],
                    help='KIND:P,... instead of tasks.MIX; the kind "where" is repository where-defined questions only')
    ap.add_argument('--init', help='without a checkpoint: start from these weights (a state dict) ...')
    ap.add_argument('--init-step', type=int, default=0, help='... at this step, with a fresh optimizer')
    ap.add_argument('--workers', type=int, default=12)
    ap.add_argument('--smoke', action='store_true', help='a tiny model on the CPU')
    ap.add_argument('--kv-heads', type=int, default=None,
                    help='KV heads (default: the model shape\'s); --init weights with fewer are grown to it')
    ap.add_argument('--log-every', type=int, default=20)
    ap.add_argument('--save-every', type=int, default=250)
    args = ap.parse_args()
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    dev = 'cuda' if torch.cuda.is_available() and not args.smoke else 'cpu'
    model = build_model(args).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=dev == 'cuda')
    ckpt_path = os.path.join(args.out, 'ckpt.pt')
    step = 0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=dev)
        model.load_state_dict(ck['model'])
        opt.load_state_dict(ck['opt'])
        step = ck['step']
        print(f'resumed at step {step}', flush=True)
    elif args.init:
        start = {k: v.float() for k, v in torch.load(args.init, map_location='cpu').items()}
        model.load_state_dict(grow_kv_heads(start, args, model))
        step = args.init_step
        print(f'started from {args.init} at step {step} with a fresh optimizer', flush=True)
    rewarm_from = step if not os.path.exists(ckpt_path) and args.init else None
    stop = min(args.stop_step or args.total_steps, args.total_steps)
    if rewarm_from is not None and stop <= step:  # a fresh run from --init that would train nothing
        sys.exit(f'train.py: --init at step {step} but the run stops at step {stop}: --total-steps (where the cosine ends) '
                 'and --stop-step must be above the start step')
    n_params = sum(p.numel() for p in model.parameters())
    print(f'params {n_params / 1e6:.2f}M device {dev} steps {step}..{stop}', flush=True)
    loader = torch.utils.data.DataLoader(Batches(args, step), batch_size=None, num_workers=args.workers,
                                         prefetch_factor=4 if args.workers else None, persistent_workers=False)
    log = open(os.path.join(args.out, 'log.jsonl'), 'a')
    tokens = 0
    last = time.time()
    model.train()
    for s, ids, cls in loader:
        if step >= stop or time.time() - t0 > args.minutes * 60:
            break
        assert s == step, (s, step)
        for g in opt.param_groups:
            # A fresh optimizer mid-run warms up again over 100 steps (its moments start at zero).
            g['lr'] = lr_at(step, args) * (min(1.0, (step - rewarm_from + 1) / 100) if rewarm_from is not None else 1.0)
        ids, cls = ids.to(dev, non_blocking=True), cls.to(dev, non_blocking=True)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == 'cuda'):
            ctx_loss, ans_loss, ans_acc = losses(model, ids, cls)
        (ctx_loss + ans_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens += ids.numel()
        if step % args.log_every == 0 or step == stop:
            now = time.time()
            rec = {'step': step, 'len': ids.shape[1], 'ctx_loss': round(ctx_loss.item(), 4),
                   'ans_loss': round(ans_loss.item(), 4), 'ans_acc': round(ans_acc.item(), 4),
                   'lr': round(lr_at(step - 1, args), 6), 'tok_s': round(tokens / (now - last)), 'elapsed': round(now - t0)}
            tokens, last = 0, now
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + '\n')
            log.flush()
        if step % args.save_every == 0:
            save(ckpt_path, model, opt, step, args)
    save(ckpt_path, model, opt, step, args)
    with open(os.path.join(args.out, 'time.jsonl'), 'a') as f:
        f.write(json.dumps({'until_step': step, 'seconds': round(time.time() - t0)}) + '\n')
    print(f'saved step {step} after {time.time() - t0:.0f}s', flush=True)


if __name__ == '__main__':
    main()
