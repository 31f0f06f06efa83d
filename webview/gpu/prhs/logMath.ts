// Log-domain helpers (a line-for-line port of native/prhs/log_math.h: the WebGPU engine's
// selection must equal the CPU reference's, so every formula keeps the C++ order of operations).

export const NEG_INF = -Infinity;

/** log(exp(a) + exp(b)), exact for -inf operands. */
export function logAdd(a: number, b: number): number {
  if (a === NEG_INF) return b;
  if (b === NEG_INF) return a;
  const hi = a > b ? a : b;
  const lo = a > b ? b : a;
  return hi + Math.log1p(Math.exp(lo - hi));
}

/** exp(logOut) / (exp(logIn) + exp(logOut)): increasing in logOut, so a bound on it bounds the share. */
export function massShare(logIn: number, logOut: number): number {
  if (logOut === NEG_INF) return 0;
  if (logIn === NEG_INF) return 1;
  return 1 / (1 + Math.exp(logIn - logOut));
}
