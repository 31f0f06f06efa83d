// Glob patterns as VS Code's `files.exclude` writes them, matched against a path relative to
// the repository root with `/` separators. Supports `**`, `*`, `?`, `{a,b}` and `[...]`/`[!...]`.
// Written here because Node 20's path.matchesGlob is experimental (and warns on use).

export type GlobMatcher = (relPath: string) => boolean;

export function compileGlobs(patterns: readonly string[]): GlobMatcher {
  const regexps = patterns.filter((p) => p.trim() !== '').map(globToRegExp);
  return (relPath) => regexps.some((r) => r.test(relPath));
}

export function globToRegExp(glob: string): RegExp {
  let pattern = glob.trim().replace(/\\/g, '/');
  if (pattern.startsWith('./')) pattern = pattern.slice(2);
  if (pattern.startsWith('/')) pattern = pattern.slice(1);
  return new RegExp('^' + translate(pattern) + '$');
}

function translate(glob: string): string {
  let out = '';
  let braceDepth = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atSegmentStart = i === 0 || glob[i - 1] === '/';
        const followedBySlash = glob[i + 2] === '/';
        if (atSegmentStart && followedBySlash) {
          out += '(?:.*/)?'; // "**/" : zero or more folders
          i += 2;
        } else {
          out += '.*';
          i += 1;
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 1);
      if (close < 0) {
        out += '\\[';
      } else {
        let body = glob.slice(i + 1, close).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = '^' + body.slice(1);
        out += '[' + body + ']';
        i = close;
      }
    } else if (c === '{') {
      braceDepth++;
      out += '(?:';
    } else if (c === '}' && braceDepth > 0) {
      braceDepth--;
      out += ')';
    } else if (c === ',' && braceDepth > 0) {
      out += '|';
    } else {
      out += c.replace(/[.+^$()|\\]/g, '\\$&');
    }
  }
  return out + ')'.repeat(braceDepth);
}
