/// <reference types="@webgpu/types" />
// Acquires a WebGPU device, or says precisely why there is none so the caller can fall back to
// the CPU engine: no navigator.gpu, no adapter, a limit below what the kernels need, or a device
// that was lost. The device asks for the adapter's largest buffers, since weights are big.

/** WebGPU cannot run the engine here; the message says why, for the status bar and the log. */
export class GpuUnavailableError extends Error {
  override readonly name = 'GpuUnavailableError';
}

export interface Gpu {
  device: GPUDevice;
  /** e.g. "swiftshader (google), fallback adapter". */
  description: string;
  /** Why the device was lost, once it has been; null while it works. */
  lostReason: () => string | null;
}

// What the kernels need beyond WebGPU's guaranteed minimums (they fit in those; checked anyway,
// so an odd adapter fails with the limit's name rather than a validation error).
const REQUIRED: [keyof GPUSupportedLimits, number][] = [
  ['maxComputeWorkgroupSizeX', 64],
  ['maxComputeInvocationsPerWorkgroup', 64],
  ['maxStorageBuffersPerShaderStage', 4],
  ['maxComputeWorkgroupStorageSize', (8 * 32 + 64 * 33) * 4], // matmul.wgsl's x and weight tiles
  ['maxComputeWorkgroupsPerDimension', 65535],
];

export async function acquireGpu(gpu: GPU | undefined = globalThis.navigator?.gpu): Promise<Gpu> {
  if (!gpu) throw new GpuUnavailableError('WebGPU is not available here (navigator.gpu is missing)');
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    throw new GpuUnavailableError(`WebGPU adapter request failed: ${(e as Error).message}`);
  }
  if (!adapter) throw new GpuUnavailableError('no WebGPU adapter (no supported GPU, or WebGPU is disabled)');

  for (const [limit, needed] of REQUIRED) {
    const has = adapter.limits[limit] as number;
    if (has < needed) throw new GpuUnavailableError(`the WebGPU adapter's ${limit} is ${has}; the engine needs ${needed}`);
  }

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
      },
      label: 'repo-lens',
    });
  } catch (e) {
    throw new GpuUnavailableError(`WebGPU device request failed: ${(e as Error).message}`);
  }

  let lost: string | null = null;
  void device.lost.then((info) => {
    lost = `the WebGPU device was lost (${info.reason}): ${info.message || 'no message'}`;
  });
  const info = adapter.info;
  const what = [info.architecture || info.device || 'unknown GPU', info.vendor ? `(${info.vendor})` : ''].filter(Boolean).join(' ');
  return {
    device,
    description: info.isFallbackAdapter ? `${what}, fallback adapter` : what,
    lostReason: () => lost,
  };
}
