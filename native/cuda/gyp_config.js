// Build settings for the CUDA sources, read by native/binding.gyp:
//   node cuda/gyp_config.js enabled   -> 1 when nvcc and the static CUDA runtime are found and
//                                        REPO_LENS_CUDA is not 0 (REPO_LENS_CUDA=1 insists)
//   node cuda/gyp_config.js nvcc|libdir|sources|gencode
// REPO_LENS_CUDA_ARCHS (e.g. "90") narrows the fat binary for quicker local builds.
'use strict';
const fs = require('fs');
const path = require('path');

const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean);

function findNvcc() {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const p = path.join(dir, 'nvcc');
    if (dir && fs.existsSync(p)) return p;
  }
  for (const home of candidates) {
    const p = path.join(home, 'bin', 'nvcc');
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function findLibdir() {
  const homes = [...candidates];
  const nvcc = findNvcc();
  if (nvcc) homes.push(path.dirname(path.dirname(fs.realpathSync(nvcc))));
  for (const home of homes) {
    for (const sub of ['lib64', 'lib', 'targets/x86_64-linux/lib', 'targets/sbsa-linux/lib']) {
      if (fs.existsSync(path.join(home, sub, 'libcudart_static.a'))) return path.join(home, sub);
    }
  }
  return null;
}

const what = process.argv[2];
const wanted = process.env.REPO_LENS_CUDA;
if (what === 'enabled') {
  const found = findNvcc() !== null && findLibdir() !== null;
  if (wanted === '1' && !found) {
    console.error('REPO_LENS_CUDA=1 but nvcc or libcudart_static.a was not found (set CUDA_HOME)');
    process.exit(1);
  }
  console.log(wanted === '0' || !found ? 0 : 1);
} else if (what === 'nvcc') {
  console.log(findNvcc() || 'nvcc');
} else if (what === 'libdir') {
  console.log(findLibdir() || '.');
} else if (what === 'sources') {
  console.log(fs.readdirSync(__dirname).filter((f) => f.endsWith('.cu')).sort().map((f) => 'cuda/' + f).join(' '));
} else if (what === 'gencode') {
  // Machine code for Ampere (80, 86), Ada (89) and Hopper (90a: with wgmma, cuda/wgmma.cuh), and PTX
  // for newer GPUs (of the last arch without its "a": arch-specific PTX runs on that arch only).
  const archs = (process.env.REPO_LENS_CUDA_ARCHS || '80 86 89 90a').split(/[\s,]+/).filter(Boolean);
  const flags = archs.map((a) => `-gencode=arch=compute_${a},code=sm_${a}`);
  const ptx = archs[archs.length - 1].replace(/a$/, '');
  flags.push(`-gencode=arch=compute_${ptx},code=compute_${ptx}`);
  console.log(flags.join(' '));
} else {
  console.error('usage: node cuda/gyp_config.js enabled|nvcc|libdir|sources|gencode');
  process.exit(2);
}
