/// <reference types="@webgpu/types" />
// The small layer between the ops and WebGPU: a compiled compute pipeline, a bind group made from
// its bindings in declaration order, and a dispatch whose workgroup count depends on the rows in
// the current step. Every op's WGSL declares @group(0) bindings 0..k, all of them used.

/** Rows in the current forward step and the position of the first one (uniform `step` in every op). */
export const STEP_BYTES = 8;

export type Workgroups = (rows: number) => [number, number, number];

export interface Dispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: Workgroups;
  /** What runs instead for a step of one row (decode), where an op has a kernel of its own for it. */
  oneRow?: Omit<Dispatch, 'oneRow'>;
}

/** Compiles each op's pipeline once per device. */
export class Kernels {
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  constructor(readonly device: GPUDevice) {}

  pipeline(name: string, code: string): GPUComputePipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      p = createPipeline(this.device, code, name);
      this.pipelines.set(name, p);
    }
    return p;
  }

  /** One dispatch of op `name`: bindings in the WGSL's declaration order. */
  dispatch(name: string, code: string, buffers: GPUBuffer[], workgroups: Workgroups): Dispatch {
    const pipeline = this.pipeline(name, code);
    return { pipeline, bindGroup: bindAll(this.device, pipeline, buffers, name), workgroups };
  }

  uniform(fields: ({ u32: number } | { f32: number })[], label: string): GPUBuffer {
    return uniformBuffer(this.device, fields, label);
  }
}

export function createPipeline(device: GPUDevice, code: string, label: string): GPUComputePipeline {
  const module = device.createShaderModule({ code, label });
  return device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
}

export function bindAll(device: GPUDevice, pipeline: GPUComputePipeline, buffers: GPUBuffer[], label: string): GPUBindGroup {
  return device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    label,
  });
}

/** A uniform buffer holding u32 and f32 fields in declaration order (each 4 bytes). */
export function uniformBuffer(device: GPUDevice, fields: ({ u32: number } | { f32: number })[], label: string): GPUBuffer {
  const bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const data = new ArrayBuffer(bytes);
  const view = new DataView(data);
  fields.forEach((f, i) => {
    if ('u32' in f) view.setUint32(i * 4, f.u32, true);
    else view.setFloat32(i * 4, f.f32, true);
  });
  const buffer = device.createBuffer({ size: bytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** Workgroups of 64 along one dimension of `size`, one row of the step per y. */
export function perRow(size: number): Workgroups {
  const x = Math.ceil(size / 64);
  return (rows) => [x, rows, 1];
}

export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: Dispatch[], rows: number): void {
  for (const any of dispatches) {
    const d = rows === 1 && any.oneRow ? any.oneRow : any;
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...d.workgroups(rows));
  }
}
