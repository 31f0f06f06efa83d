"""Trains the byte-level BPE tokenizer on real code and generated samples, and writes tokenizer.json.

Pre-tokenization splits like Qwen2's (words, single digits, punctuation runs, newlines), then maps
bytes to printable characters (ByteLevel), so any text encodes without unknown tokens. Digits are
single tokens: keys, values and line numbers are copied digit by digit.
"""
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIAL = ['<unk>', '<s>', '</s>', '<pad>']
SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def train(texts, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior='isolated'),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single='<s> $A', pair='<s> $A <s> $B',
                                                       special_tokens=[('<s>', tok.token_to_id('<s>'))])
    return tok


def main():
    import argparse
    import os
    import random
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    import corpus
    import tasks
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--js-corpus', default='.train-data/js.jsonl.gz')
    ap.add_argument('--vocab', type=int, default=8192)
    ap.add_argument('--python-chars', type=int, default=30_000_000)
    ap.add_argument('--js-chars', type=int, default=15_000_000)
    ap.add_argument('--samples', type=int, default=3000)
    ap.add_argument('--seed', type=int, default=7)
    args = ap.parse_args()
    files = corpus.load(args.js_corpus, args.python_chars, args.js_chars, args.seed)
    r = random.Random(args.seed)
    approx = lambda text: len(text) // 3  # no tokenizer yet: about 3 characters a token
    texts = [tasks.segment(f.path, f.text) for f in files]
    for i in range(args.samples):
        s = tasks.training_sample(r, approx, r.choice([512, 1024, 2048]), files)
        texts.append(tasks.SYSTEM + '\n\n' + s.context + ''.join(f'\nQuestion: {q}\nAnswer: {a}' for q, a in s.qas))
    tok = train(texts, args.vocab)
    tok.save(args.out)
    print(f'tokenizer: {tok.get_vocab_size()} entries from {len(files)} files and {args.samples} samples -> {args.out}')


if __name__ == '__main__':
    main()
