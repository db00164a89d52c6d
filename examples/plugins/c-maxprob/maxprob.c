/*
 * c-maxprob: a tiny hard-example miner in C, to show that the plugin ABI is
 * language-neutral. A sample is hard when its most likely class has a
 * probability below threshold_max.
 *
 * Build: sedna plugin build examples/plugins/c-maxprob
 */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#include "sedna_plugin.h"

static const sp_param_info params[] = {{"threshold_max", "0.6", "hard below this top probability"}};

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin(b, "MaxProb", "HardExampleMiner", "1.0.0", "top class probability below a threshold", params, 1);
}

int sp_mine(sp_call *c) {
  double th;
  if (sp_param_f64(c, "threshold_max", 0.6, &th)) return -1;
  const sp_tensor *p = sp_input(c, "probs");
  if (!p || p->dtype != SP_F32 || p->ndim != 2) return sp_fail(c, "MaxProb needs probs f32 [batch, classes]");
  uint32_t n = p->shape[0], k = p->shape[1];
  uint8_t *hard = sp_alloc_call(c, n);
  float *score = sp_alloc_call(c, (size_t)n * sizeof(float));
  if (!hard || !score) return sp_fail(c, "out of memory");
  const float *row = p->data;
  for (uint32_t i = 0; i < n; i++, row += k) {
    if (k == 0) { sp_reason(c, i, "no classes"); continue; }
    float top = row[0];
    for (uint32_t j = 1; j < k; j++) if (row[j] > top) top = row[j];
    if (top != top) { sp_reason(c, i, "probability is NaN"); continue; }
    score[i] = top;
    hard[i] = top < th;
  }
  sp_output(c, "hard", SP_U8, hard, n);
  sp_output(c, "score", SP_F32, score, n);
  return 0;
}
