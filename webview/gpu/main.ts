// Entry point of the hidden WebGPU engine webview (bundled to dist/webview/gpu.js).
// The extension host posts protocol requests (src/engine/protocol.ts) and receives the replies.
// A load request's modelDir is a URL the webview can fetch: the host passes
// webview.asWebviewUri(<model folder>) and lists the folder in localResourceRoots.
// Prompts are token ids; the host tokenizes and detokenizes (src/engine/webgpu.ts).

import { vscodeApi } from '../common/vscodeApi';
import { acquireGpu } from './device';
import { WebGpuEngine } from './engine';
import { urlModelFiles } from './files';

const api = vscodeApi<unknown>();
const engine = new WebGpuEngine({
  post: (reply) => api.postMessage(reply),
  files: (modelDir) => urlModelFiles(modelDir),
  acquireGpu: () => acquireGpu(),
});

window.addEventListener('message', (event: MessageEvent) => engine.receive(event.data));
// Tells the host the script runs (requests sent before this would be lost).
api.postMessage({ type: 'engine-ready' });
