{
  # The addon: one N-API surface (addon.cc) over the engine. Sources are picked up by folder so
  # that adding an op or a backend file needs no edit here. CUDA is added by the cuda/ folder's
  # own rules when the "cuda" variable is 1 (see native/cuda/README.md).
  "variables": {
    "cuda%": "<!(node -p \"process.env.REPO_LENS_CUDA || '0'\")"
  },
  "targets": [
    {
      "target_name": "repo_lens",
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('.').filter(f=>f.endsWith('.cc')).join(' ')\")",
        "<!@(node -p \"['model','kv','cpu','prhs'].flatMap(d=>require('fs').existsSync(d)?require('fs').readdirSync(d).filter(f=>f.endsWith('.cc')).map(f=>d+'/'+f):[]).join(' ')\")"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "."],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions"],
      "ldflags": ["-pthread"]
    }
  ]
}
