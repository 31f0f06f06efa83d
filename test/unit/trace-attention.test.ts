import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ATTENTION_DEFAULTS, AttentionSettingsError, parseAttentionSettings } from '../../src/trace/attention';

test('defaults fill what a request leaves out', () => {
  assert.deepEqual(parseAttentionSettings({}), ATTENTION_DEFAULTS);
  const s = parseAttentionSettings({ mode: 'quest', budget: 0.1, keyBound: 'int8' });
  assert.equal(s.mode, 'quest');
  assert.equal(s.budget, 0.1);
  assert.equal(s.keyBound, 'int8');
  assert.equal(s.tau, 0.8);
  assert.equal(s.maxReuse, 16);
  assert.equal(s.deltaTarget, 0.05);
});

test('bad settings are refused with the field named', () => {
  const bad: [unknown, RegExp][] = [
    [null, /must be an object/],
    [{ mode: 'sparse' }, /attention\.mode must be one of dense, prhs/],
    [{ budget: 0 }, /attention\.budget must be > 0/],
    [{ budget: 2 }, /attention\.budget must be in \[0, 1\]/],
    [{ maxReuse: 1.5 }, /attention\.maxReuse must be an integer/],
    [{ layerGroup: 0 }, /attention\.layerGroup must be in/],
    [{ depthPhi: 1 }, /attention\.depthPhi must be in \(0, 1\)/],
    [{ strict: 'yes' }, /attention\.strict must be a boolean/],
    [{ tua: 0.9 }, /attention\.tua is not a setting/],
  ];
  for (const [x, re] of bad) assert.throws(() => parseAttentionSettings(x), (e: unknown) => e instanceof AttentionSettingsError && re.test(e.message));
});
