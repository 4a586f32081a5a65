// CPU kernels that the training graph's rewrites (graph.h: RewriteForCpu) put in after autodiff,
// as ggml custom ops: they need no backward pass, and they run only on the CPU backend.
#pragma once

#include <ggml.h>

namespace sr3 {

// A contiguous F32 copy of `x` (any strides), with dimension 0 widened to `ne0` (>= x->ne[0]) and
// the new columns zero. ggml_cont of a tensor whose rows are not contiguous, a transpose, copies
// one element per memcpy call; this copies through cache-sized tiles on all threads.
ggml_tensor * StridedCopy(ggml_context * ctx, ggml_tensor * x, int64_t ne0);

// Turns `node`, a GGML_OP_CONT of an F32 tensor, into the StridedCopy of its source (same values).
void MakeStridedCopy(ggml_context * ctx, ggml_tensor * node);

}  // namespace sr3
