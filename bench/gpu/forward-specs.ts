// Writes the plain-text model specs that bench/gpu/forward_check.cc reads (the device machine has
// no Node.js): each model's ModelSpec as src/model/loader.ts builds it, with file paths relative to
// the repository root, plus the ids and the transformers logits to compare with.
//   node --import tsx bench/gpu/forward-specs.ts   -> .carry/gpu-forward/{stories260K,llama3,qwen2,mistral}.spec
// stories260K's weights (../shared) are copied into .carry/gpu-forward/ so `run` can carry them.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readModelSpec } from '../../src/model/loader';

const OUT = join('.carry', 'gpu-forward');
const FIXTURES = join('test', 'fixtures');
const SHARED = join('..', 'shared', 'models', 'stories260K');
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

function specText(dir: string, logits: string, ids: number[], prompt: number[], greedy: number[]): string {
  const spec = readModelSpec(dir, { kvBlockSize: 16, threads: 2 });
  const a = spec.arch;
  const rs = a.ropeScaling;
  const lines = [
    `arch ${a.hiddenSize} ${a.intermediateSize} ${a.numLayers} ${a.numHeads} ${a.numKvHeads} ${a.headDim} ${a.vocabSize} ${a.maxPositions}` +
      ` ${a.rmsNormEps} ${a.ropeTheta} ${+a.attentionBias} ${+a.tieEmbeddings} ${rs ? 1 : 0} ${rs?.factor ?? 1} ${rs?.lowFreqFactor ?? 1}` +
      ` ${rs?.highFreqFactor ?? 4} ${rs?.originalMaxPositions ?? 8192}`,
    `block_size ${spec.kvBlockSize}`,
    `context ${spec.contextTokens}`,
    ...spec.tensors.map((t) => `tensor ${t.name} ${relative(process.cwd(), t.file)} ${t.dtype} ${t.begin} ${t.end} ${t.shape.length} ${t.shape.join(' ')}`),
    `logits ${logits}`,
    `ids ${ids.length} ${ids.join(' ')}`,
    `prompt ${prompt.length} ${prompt.join(' ')}`,
    `greedy ${greedy.length} ${greedy.join(' ')}`,
  ];
  return lines.join('\n') + '\n';
}

mkdirSync(join(OUT, 'stories260K'), { recursive: true });
for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(SHARED, 'hf', f), join(OUT, 'stories260K', f));
const reference = readJson(join(FIXTURES, 'reference', 'stories260K.json'));
const golden = readJson(join(SHARED, 'golden-transformers.json'));
writeFileSync(
  join(OUT, 'stories260K.spec'),
  specText(join(OUT, 'stories260K'), join(FIXTURES, 'reference', 'stories260K-logits.f32'), reference.ids, golden.input_ids, golden.greedy_ids),
);
for (const name of ['llama3', 'qwen2', 'mistral']) {
  const dir = join(FIXTURES, 'models', name);
  const g = readJson(join(dir, 'golden.json'));
  writeFileSync(join(OUT, `${name}.spec`), specText(dir, join(dir, g.logits_file), g.greedy_ids, g.prompt_ids, g.greedy_ids));
}
console.log(`wrote ${OUT}/*.spec`);
