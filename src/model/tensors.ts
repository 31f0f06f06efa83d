// The tensors a Llama-family model needs, with the shape its config implies, and the check that a
// folder's weights provide them. Pure (no Node APIs): the WebGPU engine checks weights the same way.

import { ModelError } from './errors';
import type { ModelArch } from './native';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** Every tensor the forward pass reads, in a fixed order (embeddings, layers, final norm, head). */
export function expectedTensors(arch: ModelArch): ExpectedTensor[] {
  const { hiddenSize: d, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize } = arch;
  const qDim = numHeads * headDim;
  const kvDim = numKvHeads * headDim;
  const out: ExpectedTensor[] = [{ name: 'model.embed_tokens.weight', shape: [vocabSize, d] }];
  for (let l = 0; l < arch.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      { name: p + 'input_layernorm.weight', shape: [d] },
      { name: p + 'self_attn.q_proj.weight', shape: [qDim, d] },
      { name: p + 'self_attn.k_proj.weight', shape: [kvDim, d] },
      { name: p + 'self_attn.v_proj.weight', shape: [kvDim, d] },
    );
    if (arch.attentionBias) {
      out.push(
        { name: p + 'self_attn.q_proj.bias', shape: [qDim] },
        { name: p + 'self_attn.k_proj.bias', shape: [kvDim] },
        { name: p + 'self_attn.v_proj.bias', shape: [kvDim] },
      );
    }
    out.push(
      { name: p + 'self_attn.o_proj.weight', shape: [d, qDim] },
      { name: p + 'post_attention_layernorm.weight', shape: [d] },
      { name: p + 'mlp.gate_proj.weight', shape: [f, d] },
      { name: p + 'mlp.up_proj.weight', shape: [f, d] },
      { name: p + 'mlp.down_proj.weight', shape: [d, f] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [d] });
  if (!arch.tieEmbeddings) out.push({ name: 'lm_head.weight', shape: [vocabSize, d] });
  return out;
}

/**
 * Picks the expected tensors out of `found` (name -> shape and the file holding it) and checks
 * each shape. Missing tensors are reported against `weightsName` (the file or index that should
 * list them); a wrong shape against the file holding the tensor.
 */
export function selectTensors<T extends { shape: number[]; file: string }>(
  arch: ModelArch,
  found: Map<string, T>,
  weightsName: string,
): (T & { name: string })[] {
  return expectedTensors(arch).map(({ name, shape }) => {
    const t = found.get(name);
    if (!t) throw new ModelError(weightsName, `tensor "${name}" is missing (config.json's architecture needs it)`);
    if (t.shape.length !== shape.length || t.shape.some((n, i) => n !== shape[i])) {
      throw new ModelError(t.file, `tensor "${name}" has shape [${t.shape.join(', ')}], but config.json implies [${shape.join(', ')}]`);
    }
    return { ...t, name };
  });
}
