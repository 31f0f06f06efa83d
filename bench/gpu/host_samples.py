# Counts host_sampler.cc's samples by function, inclusive and self:
#   python3 bench/gpu/host_samples.py SAMPLES EXECUTABLE [--only SUBSTRING] [--top N]
# --only keeps the samples with a frame containing SUBSTRING (e.g. Model::forward). "@0x<offset>" frames
# (not in the dynamic symbol table) are named by the executable's symbol table (nm -C -n).
import bisect, collections, functools, subprocess, sys
args = sys.argv[1:]
only = args[args.index('--only') + 1] if '--only' in args else None
top = int(args[args.index('--top') + 1]) if '--top' in args else 60
syms = []
for l in subprocess.run(['nm', '-C', '-n', '--defined-only', args[1]], capture_output=True, text=True).stdout.split('\n'):
    p = l.split(' ', 2)
    if len(p) == 3 and p[1] in 'tTwW':
        syms.append((int(p[0], 16), p[2][:160]))
addrs = [a for a, _ in syms]
@functools.lru_cache(maxsize=None)
def name(f):
    if not f.startswith('@0x'): return f[:160]
    i = bisect.bisect_right(addrs, int(f[3:], 16)) - 1
    return syms[i][1] if i >= 0 else f
incl, selfc, n = collections.Counter(), collections.Counter(), 0
for l in open(args[0]):
    fs = [name(f) for f in l.rstrip('\n').split(' | ')]
    if only and not any(only in f for f in fs): continue
    n += 1
    selfc[fs[0]] += 1
    for f in set(fs): incl[f] += 1
print(f'inclusive ({n} samples{", with " + only if only else ""})')
for f, c in incl.most_common(top): print(f'{c:7d} {100*c/max(n,1):5.1f}% {f}')
print('self')
for f, c in selfc.most_common(35): print(f'{c:7d} {100*c/max(n,1):5.1f}% {f}')
