// JSON Schema (draft 2020-12 subset) of the selection trace, version 1. The single source of the
// trace's shape: validate.ts checks documents against it, docs/trace.md explains it, and
// `repo-lens trace-schema` style tools can print it for other consumers.
import { ATTENTION_MODES, KEY_BOUNDS } from './attention';
import { TRACE_FORMAT, TRACE_VERSION } from './types';

export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  minItems?: number;
  maxItems?: number;
  enum?: readonly unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  $schema?: string;
  $id?: string;
  description?: string;
};

const nat: JsonSchema = { type: 'integer', minimum: 0 };
const unit: JsonSchema = { type: 'number', minimum: 0, maximum: 1 };
const unitOrNull: JsonSchema = { type: ['number', 'null'], minimum: 0, maximum: 1 };

function object(properties: Record<string, JsonSchema>, description?: string): JsonSchema {
  return { type: 'object', properties, required: Object.keys(properties), additionalProperties: false, ...(description ? { description } : {}) };
}

export const TRACE_SCHEMA: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: `https://repo-lens.invalid/schema/selection-trace-v${TRACE_VERSION}.json`,
  description: 'Repo Lens selection trace: per generated token, per layer, per KV head, the KV blocks attended.',
  ...object({
    format: { const: TRACE_FORMAT },
    version: { const: TRACE_VERSION },
    createdAt: { type: 'string' },
    model: object({ name: { type: 'string' }, numLayers: nat, numHeads: nat, numKvHeads: nat, headDim: nat }),
    kvBlockSize: { type: 'integer', minimum: 1 },
    attention: object({
      mode: { enum: ATTENTION_MODES },
      budget: unit, budgetTokens: nat, sinks: nat, window: nat,
      tau: { type: 'number', minimum: -1, maximum: 1 }, maxReuse: nat, dilation: nat, dilateTop: nat,
      layerGroup: { type: 'integer', minimum: 1 },
      depthSchedule: { type: 'boolean' }, depthStartLayer: { type: 'integer', minimum: -1 },
      depthPhi: unit, depthAlpha: { type: 'number', minimum: 0 },
      deltaTarget: unit, certifyEvery: nat, strict: { type: 'boolean' }, audit: { type: 'boolean' },
      keyBound: { enum: KEY_BOUNDS },
    }),
    promptTokens: nat,
    manifest: { type: 'array', items: { $ref: '#/$defs/manifestBlock' } },
    steps: { type: 'array', items: { $ref: '#/$defs/step' } },
    summary: object({
      steps: nat, effectiveBudget: unit, scoringPassesPerToken: { type: 'number', minimum: 0 },
      certifyPassesPerToken: { type: 'number', minimum: 0 },
      meanDeltaHat: unitOrNull, maxDeltaHat: unitOrNull, meanDelta: unitOrNull, maxDelta: unitOrNull,
      expansionRate: unit,
    }),
  }),
  $defs: {
    blockRanges: { type: 'array', items: { type: 'array', prefixItems: [nat, nat], minItems: 2, maxItems: 2 } },
    span: object({ source: { type: 'string' }, startLine: { type: 'integer', minimum: 1 }, endLine: { type: 'integer', minimum: 1 }, tokenStart: nat, tokenEnd: nat }),
    manifestBlock: object({ block: nat, tokenStart: nat, tokenEnd: nat, spans: { type: 'array', items: { $ref: '#/$defs/span' }, minItems: 1 } }),
    head: object({
      kvHead: nat, blocks: { $ref: '#/$defs/blockRanges' },
      source: { enum: ['scored', 'reused', 'shared', 'fixed', 'dense'] },
      deltaHat: unitOrNull, delta: unitOrNull, expanded: nat,
    }),
    layer: object({ layer: nat, heads: { type: 'array', items: { $ref: '#/$defs/head' } } }),
    step: object({
      step: nat, position: nat, tokenId: nat, text: { type: 'string' }, contextBlocks: nat,
      layers: { type: 'array', items: { $ref: '#/$defs/layer' } },
    }),
  },
};
