// WGSL sources are bundled as text (esbuild's "text" loader for .wgsl).
declare module '*.wgsl' {
  const source: string;
  export default source;
}
