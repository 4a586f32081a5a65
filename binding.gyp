{
  # The node-gyp build path: the same native/*.cc sources as CMakeLists.txt (cmake-js), linked
  # against llama.cpp's static libraries that scripts/gyp-llama.js builds (or reuses).
  "targets": [
    {
      "target_name": "search_r3",
      "sources": ["<!@(node scripts/gyp-llama.js --sources)"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "deps/llama.cpp/include",
        "deps/llama.cpp/ggml/include"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "libraries": ["<!@(node scripts/gyp-llama.js --libs)"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0",
        "OTHER_LDFLAGS": ["-framework Accelerate", "-framework Foundation", "-framework Metal", "-framework MetalKit"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
