// The training forward graph of a dense decoder: whole sequences at once, attention as
// mul_mat + soft_max_ext under a causal mask (no KV cache, no flash attention) so that ggml's
// autodiff reaches every LoRA matrix, including those on K and V.
#pragma once

#include "train/lora.h"
#include "train/weights.h"

#include <cstdint>
#include <vector>

namespace sr3 {

// A padded batch: n_seq sequences of n_len tokens, row r = seq * n_len + position. Sequences
// shorter than n_len are padded at the end; under the causal mask padding never reaches a real
// position.
struct TrainBatch {
  int n_seq = 0;
  int n_len = 0;
  std::vector<int32_t> tokens;         // n_seq * n_len
  std::vector<int32_t> embed_rows;     // rows whose final hidden state is an embedding
  std::vector<int32_t> target_rows;    // rows whose logits predict a target token
  std::vector<int32_t> target_tokens;  // the token each target row predicts
};

// Collects a graph's input tensors with the bytes they must hold, so that they can be uploaded
// after the allocator has placed them.
class GraphInputs {
 public:
  ggml_tensor * I32(ggml_context * ctx, const std::vector<int32_t> & data, const char * name);
  ggml_tensor * F32(ggml_context * ctx, const std::vector<float> & data, int64_t ne0, int64_t ne1, const char * name);
  void Upload() const;

 private:
  // Names t, marks it a graph input and keeps a copy of its bytes for Upload.
  ggml_tensor * Stage(ggml_tensor * t, const void * data, size_t bytes, const char * name);
  struct Pending {
    ggml_tensor * t;
    std::vector<uint8_t> bytes;
  };
  std::vector<Pending> pending_;
};

// Builds the forward pass and returns the final hidden states after the output norm,
// [n_embd, n_seq * n_len]. `lora` null (or the reference pass) means the base model alone.
ggml_tensor * BuildForward(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, const LoraParams * lora,
                           const TrainBatch & batch);

// Logits of the batch's target rows, [n_vocab, n_targets], through the adapted output head when
// `lora` adapts it (null: the base head).
ggml_tensor * BuildTargetLogits(ggml_context * ctx, GraphInputs & in, const TrainWeights & w, const LoraParams * lora,
                                ggml_tensor * hidden, const TrainBatch & batch);

// After ggml_build_backward_expand: rewrites each out_prod(a, b) node whose inner dimension is 32 or
// more into mul_mat(aᵀ, bᵀ), the same values on ggml's tiled matmul kernels instead of out_prod's
// multiply-add loop (2-10× slower on CPU for such shapes; over a shorter inner dimension out_prod
// is the faster of the two). aᵀ and bᵀ come from the stored transposed
// copy of a frozen matrix, the source of a transpose view, or a transposing copy; a frozen matrix
// without a stored copy keeps its out_prod. A product over the vocabulary is split into slabs. New
// nodes are made in `ctx` and spliced into the graph before the node they feed. Returns how many
// nodes it rewrote.
int RewriteOutProducts(ggml_context * ctx, ggml_cgraph * graph, const TrainWeights & w);

// After RewriteOutProducts (or on a forward graph): rewrites, in place, F32 nodes whose shapes ggml's
// CPU kernels handle slowly, into the same values by a faster route.
// - ggml_cont of a tensor whose rows are not contiguous (a transpose): ggml copies one element per
//   memcpy call; a StridedCopy (kernels.h) copies through tiles.
// - mul_mat whose inner dimension K is not a multiple of 16: ggml's tiled matmul refuses it and
//   falls back to one dot product per output with a scalar remainder loop. Below 16 (an 8-wide
//   attention head, a LoRA rank) it becomes out_prod(copy of src0ᵀ, src1ᵀ), which runs along the
//   long rows; above, a mul_mat of copies zero-padded to a multiple of 16.
// Measured on stories260K (head_dim 8, FFN 172), 2 threads: these took over half of a LoRA step.
// Returns how many nodes it changed.
int RewriteForCpu(ggml_context * ctx, ggml_cgraph * graph);

// Nodes a graph of this model needs, with room for the backward pass and the losses.
size_t GraphSize(const TrainWeights & w);

}  // namespace sr3
