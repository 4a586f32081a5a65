#include "train/kernels.h"

#include <algorithm>
#include <cstring>

namespace sr3 {

namespace {

constexpr int64_t kTile = 32;  // 32 × 32 floats = 4 KiB read and written per tile

// dst[i0, i1, i2, i3] = src[i0, i1, i2, i3] for i0 < src->ne[0], else 0. Work is split into bands
// of kTile rows of one (i2, i3) plane; thread ith takes every nth band.
void StridedCopyKernel(ggml_tensor * dst, int ith, int nth, void *) {
  const ggml_tensor * src = dst->src[0];
  const int64_t n0 = src->ne[0], n1 = dst->ne[1], n2 = dst->ne[2], n3 = dst->ne[3], d0 = dst->ne[0];
  const size_t s0 = src->nb[0], s1 = src->nb[1], s2 = src->nb[2], s3 = src->nb[3];
  const int64_t bands_per_plane = (n1 + kTile - 1) / kTile, bands = bands_per_plane * n2 * n3;
  const bool rows_contiguous = s0 == sizeof(float);
  for (int64_t band = ith; band < bands; band += nth) {
    const int64_t plane = band / bands_per_plane, i1_begin = (band % bands_per_plane) * kTile;
    const int64_t i2 = plane % n2, i3 = plane / n2, i1_end = std::min(n1, i1_begin + kTile);
    const char * sp = (const char *)src->data + i2 * s2 + i3 * s3;
    float * dp = (float *)((char *)dst->data + i2 * dst->nb[2] + i3 * dst->nb[3]);
    if (rows_contiguous) {
      for (int64_t i1 = i1_begin; i1 < i1_end; i1++) std::memcpy(dp + i1 * d0, sp + i1 * s1, n0 * sizeof(float));
    } else {
      for (int64_t i0b = 0; i0b < n0; i0b += kTile) {
        const int64_t i0e = std::min(n0, i0b + kTile);
        for (int64_t i1 = i1_begin; i1 < i1_end; i1++) {
          float * d = dp + i1 * d0;
          const char * s = sp + i1 * s1;
          for (int64_t i0 = i0b; i0 < i0e; i0++) d[i0] = *(const float *)(s + i0 * s0);
        }
      }
    }
    if (d0 > n0) {
      for (int64_t i1 = i1_begin; i1 < i1_end; i1++) std::memset(dp + i1 * d0 + n0, 0, (d0 - n0) * sizeof(float));
    }
  }
}

}  // namespace

ggml_tensor * StridedCopy(ggml_context * ctx, ggml_tensor * x, int64_t ne0) {
  GGML_ASSERT(x->type == GGML_TYPE_F32 && ne0 >= x->ne[0]);
  ggml_tensor * args[1] = {x};
  return ggml_custom_4d(ctx, GGML_TYPE_F32, ne0, x->ne[1], x->ne[2], x->ne[3], args, 1, StridedCopyKernel,
                        GGML_N_TASKS_MAX, nullptr);
}

void MakeStridedCopy(ggml_context * ctx, ggml_tensor * node) {
  GGML_ASSERT(node->op == GGML_OP_CONT && node->type == GGML_TYPE_F32 && node->src[0]->type == GGML_TYPE_F32);
  GGML_ASSERT(ggml_are_same_shape(node, node->src[0]) && ggml_is_contiguous(node));
  const ggml_tensor * model = StridedCopy(ctx, node->src[0], node->ne[0]);  // only its op and parameters are taken
  node->op = model->op;
  std::memcpy(node->op_params, model->op_params, sizeof(node->op_params));
}

}  // namespace sr3
