{
  # The addon: one N-API surface (addon.cc) over the engine. Sources are picked up by folder so
  # that adding an op or a backend file needs no edit here. CUDA is added by the cuda/ folder's
  # own rules when the "cuda" variable is 1: by default when nvcc and the static CUDA runtime are
  # found; REPO_LENS_CUDA=0 builds CPU only (see native/cuda/gyp_config.js).
  "variables": {
    "cuda%": "<!(node cuda/gyp_config.js enabled)"
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
      "ldflags": ["-pthread"],
      "conditions": [
        ["cuda==1", {
          "sources": ["<!@(node cuda/gyp_config.js sources)"],
          "defines": ["REPO_LENS_CUDA=1"],
          "libraries": ["-L<!(node cuda/gyp_config.js libdir)", "-lcudart_static", "-ldl", "-lpthread", "-lrt"],
          "rules": [{
            "rule_name": "nvcc",
            "extension": "cu",
            "inputs": ["<(RULE_INPUT_PATH)"],
            "outputs": ["<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"],
            "action": ["<!(node cuda/gyp_config.js nvcc)", "-std=c++17", "-O3", "-Xcompiler", "-fPIC",
                       "<!@(node cuda/gyp_config.js gencode)", "-I<(module_root_dir)", "-c", "<(RULE_INPUT_PATH)",
                       "-o", "<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"],
            "message": "nvcc <(RULE_INPUT_PATH)",
            "process_outputs_as_sources": 1
          }]
        }]
      ]
    }
  ]
}
