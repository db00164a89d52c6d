/*
 * The built-in hard-example miners and aggregators of Sedna-Go, one WASM
 * module loaded through the same host path as any third party's plugin.
 *
 * Miners follow Sedna's semantics and parameter names; aggregators are
 * FedAvg, FedAvgM, coordinate-wise Median and TrimmedMean. Every rule has a
 * native Go twin in plugins/internal/reference that the tests hold it to,
 * operation for operation (float32 where the twin uses float32).
 *
 * Rebuild: make wasm (CI rebuilds and fails when the committed file differs).
 */
#define SP_IMPLEMENTATION
#include "sedna_plugin.h"

#include <math.h>
#include <wasm_simd128.h>

#define BLOCK 64

/*
 * Loops are few and wide on purpose. The host stops runaway plugins
 * (wazero's WithCloseOnContextDone), which costs a call at every loop
 * header; a loop over 64 floats a turn with 128-bit SIMD pays it 64 times
 * less often than one over single floats.
 */

#define VERSION "1.0.0"

static const sp_param_info p_threshold[] = {
    {"threshold", "0.5", "hard when the mean box score is below this"}};
static const sp_param_info p_ce[] = {
    {"threshold_cross_entropy", "0.5", "hard when 1 + sum(p ln p)/ln N is below this"}};
static const sp_param_info p_ibt[] = {
    {"threshold_img", "0.5", "hard when the share of low-score boxes is at least 1 - threshold_img"},
    {"threshold_box", "0.5", "a box is low-score when its score is at most this"}};
static const sp_param_info p_random[] = {
    {"random_ratio", "0.3", "probability that a sample is hard"}};
static const sp_param_info p_fedavgm[] = {
    {"server_lr", "1.0", "server learning rate"},
    {"momentum", "0.9", "server momentum"}};
static const sp_param_info p_trim[] = {
    {"trim_ratio", "0.1", "share of updates dropped at each end of every coordinate"}};

void sp_manifest(sp_buf *b) {
  const char *M = "HardExampleMiner", *A = "Aggregator";
  sp_manifest_begin(b, 10);
  sp_manifest_plugin(b, "Threshold", M, VERSION, "mean box score below a threshold", p_threshold, 1);
  sp_manifest_plugin(b, "CrossEntropy", M, VERSION, "low confidence by normalised entropy of class probabilities", p_ce, 1);
  sp_manifest_plugin(b, "IBT", M, VERSION, "image-box thresholds: many low-score boxes", p_ibt, 2);
  sp_manifest_plugin(b, "Random", M, VERSION, "a random share of samples, seeded per call", p_random, 1);
  sp_manifest_plugin(b, "EdgeOnly", M, VERSION, "never hard: everything stays on the edge", 0, 0);
  sp_manifest_plugin(b, "CloudOnly", M, VERSION, "always hard: everything goes to the cloud", 0, 0);
  sp_manifest_plugin(b, "FedAvg", A, VERSION, "sample-weighted average of the updates", 0, 0);
  sp_manifest_plugin(b, "FedAvgM", A, VERSION, "FedAvg with server momentum", p_fedavgm, 2);
  sp_manifest_plugin(b, "Median", A, VERSION, "coordinate-wise median of the updates", 0, 0);
  sp_manifest_plugin(b, "TrimmedMean", A, VERSION, "coordinate-wise mean without the extremes", p_trim, 1);
}

/* ---------------- miners ---------------- */

typedef struct {
  uint32_t batch;
  const float *probs; /* batch x classes, or 0 */
  uint32_t classes;
  const float *boxes; /* nboxes x cols, or 0 */
  uint32_t cols;
  const uint32_t *counts; /* boxes per sample */
  uint8_t *hard;
  float *score;
} mine_io;

static int mine_inputs(sp_call *c, mine_io *io) {
  const sp_tensor *p = sp_input(c, "probs"), *b = sp_input(c, "boxes"), *n = sp_input(c, "box_counts");
  const sp_tensor *in = sp_input(c, "inputs");
  io->batch = 0;
  if (p) {
    if (p->dtype != SP_F32 || p->ndim != 2) return sp_fail(c, "probs must be f32 [batch, classes]");
    io->probs = p->data;
    io->batch = p->shape[0];
    io->classes = p->shape[1];
  }
  if (b || n) {
    if (!b || !n) return sp_fail(c, "boxes and box_counts come together");
    if (b->dtype != SP_F32 || b->ndim != 2 || b->shape[1] < 5)
      return sp_fail(c, "boxes must be f32 [n, 6]: xmin, ymin, xmax, ymax, score, label");
    if (n->dtype != SP_U32 || n->ndim != 1) return sp_fail(c, "box_counts must be u32 [batch]");
    if (p && n->shape[0] != io->batch) return sp_fail(c, "probs and box_counts disagree on the batch size");
    uint64_t total = 0;
    io->counts = n->data;
#pragma clang loop unroll_count(16)
    for (uint32_t i = 0; i < n->shape[0]; i++) total += io->counts[i];
    if (total != b->shape[0]) return sp_fail(c, "box_counts do not add up to the number of boxes");
    io->boxes = b->data;
    io->cols = b->shape[1];
    io->batch = n->shape[0];
  }
  if (!p && !b) {
    /* mining-then-inference: only the raw samples, for the miners that
       need no inference result (Random, EdgeOnly, CloudOnly) */
    if (!in) return sp_fail(c, "no inference results: send probs and/or boxes with box_counts, or inputs");
    if (in->ndim != 2) return sp_fail(c, "inputs must be [batch, features]");
    io->batch = in->shape[0];
  }
  io->hard = sp_alloc_call(c, io->batch);
  io->score = sp_alloc_call(c, (size_t)io->batch * sizeof(float));
  if (!io->hard || !io->score) return sp_fail(c, "out of memory");
  return 0;
}

static void mine_outputs(sp_call *c, mine_io *io) {
  sp_output(c, "hard", SP_U8, io->hard, io->batch);
  sp_output(c, "score", SP_F32, io->score, io->batch);
}

static int need_boxes(sp_call *c, mine_io *io, const char *who) {
  if (io->boxes) return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "%s needs detection boxes", who);
  return sp_fail(c, msg);
}

static int mine_threshold(sp_call *c, mine_io *io) {
  double th;
  if (sp_param_f64(c, "threshold", 0.5, &th) || need_boxes(c, io, "Threshold")) return -1;
  const float *bx = io->boxes;
  for (uint32_t i = 0; i < io->batch; i++) {
    uint32_t k = io->counts[i];
    const float *row = bx;
    bx += (uint64_t)k * io->cols;
    if (k == 0) { sp_reason(c, i, "no boxes"); continue; }
    double sum = 0;
    int bad = 0;
#pragma clang loop unroll_count(8)
    for (uint32_t j = 0; j < k; j++) {
      float s = row[(uint64_t)j * io->cols + 4];
      bad |= s != s;
      sum += s;
    }
    if (bad) { sp_reason(c, i, "box score is NaN"); continue; }
    double mean = sum / k;
    io->score[i] = (float)mean;
    io->hard[i] = mean < th;
  }
  return 0;
}

static int mine_ibt(sp_call *c, mine_io *io) {
  double ti, tb;
  if (sp_param_f64(c, "threshold_img", 0.5, &ti) || sp_param_f64(c, "threshold_box", 0.5, &tb) ||
      need_boxes(c, io, "IBT"))
    return -1;
  const float *bx = io->boxes;
  for (uint32_t i = 0; i < io->batch; i++) {
    uint32_t k = io->counts[i];
    const float *row = bx;
    bx += (uint64_t)k * io->cols;
    if (k == 0) { sp_reason(c, i, "no boxes"); continue; }
    uint32_t low = 0;
    int bad = 0;
#pragma clang loop unroll_count(8)
    for (uint32_t j = 0; j < k; j++) {
      float s = row[(uint64_t)j * io->cols + 4];
      bad |= s != s;
      low += (double)s <= tb;
    }
    if (bad) { sp_reason(c, i, "box score is NaN"); continue; }
    double share = (double)low / k;
    io->score[i] = (float)share;
    io->hard[i] = share >= 1 - ti;
  }
  return 0;
}

static int mine_cross_entropy(sp_call *c, mine_io *io) {
  double th;
  if (sp_param_f64(c, "threshold_cross_entropy", 0.5, &th)) return -1;
  if (!io->probs) return sp_fail(c, "CrossEntropy needs class probabilities");
  uint32_t n = io->classes;
  for (uint32_t i = 0; i < io->batch; i++) {
    if (n < 2) { sp_reason(c, i, "needs at least two classes"); continue; }
    const float *p = io->probs + (uint64_t)i * n;
    double sum = 0;
    int bad = 0;
#pragma clang loop unroll_count(4)
    for (uint32_t j = 0; j < n; j++) {
      double q = p[j];
      bad |= !(q >= 0 && q <= 1);
      if (q > 0 && q <= 1) sum += q * log(q);
    }
    if (bad) { sp_reason(c, i, "probability outside [0, 1] or NaN"); continue; }
    double conf = 1 + sum / log((double)n);
    io->score[i] = (float)conf;
    io->hard[i] = conf < th;
  }
  return 0;
}

/* splitmix64: the host's seed and the sample index give each draw. */
static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static int mine_random(sp_call *c, mine_io *io) {
  double r;
  if (sp_param_f64(c, "random_ratio", 0.3, &r)) return -1;
  for (uint32_t i = 0; i < io->batch; i++) {
    double u = (double)(splitmix64(c->req.seed + i) >> 11) * 0x1.0p-53;
    io->score[i] = (float)u;
    io->hard[i] = u < r;
  }
  return 0;
}

int sp_mine(sp_call *c) {
  mine_io io = {0};
  if (mine_inputs(c, &io)) goto done;
  int rc = 0;
  sp_str who = c->req.plugin;
  if (sp_streq(who, "Threshold")) rc = mine_threshold(c, &io);
  else if (sp_streq(who, "CrossEntropy")) rc = mine_cross_entropy(c, &io);
  else if (sp_streq(who, "IBT")) rc = mine_ibt(c, &io);
  else if (sp_streq(who, "Random")) rc = mine_random(c, &io);
  else if (sp_streq(who, "EdgeOnly")) { /* zeros */ }
  else if (sp_streq(who, "CloudOnly")) {
    for (uint32_t i = 0; i < io.batch; i++) { io.hard[i] = 1; io.score[i] = 1; }
  } else rc = sp_fail(c, "no such miner in this module");
  if (rc == 0) mine_outputs(c, &io);
  return rc;
done:
  return -1;
}

/* ---------------- aggregators ---------------- */

typedef struct {
  uint32_t k, n;       /* updates, parameters */
  const float *w;      /* k x n */
  const double *count; /* k */
  const float *global; /* n, or 0 */
  const float *state;  /* n, or 0 */
  uint32_t *use;       /* indexes of valid updates */
  uint32_t nuse;
  double samples;
} agg_io;

/* finite_row: x - x is 0 for finite x and NaN for NaN and the infinities;
 * NaN != NaN finds it, 64 floats a turn. */
static int finite_row(const float *w, uint32_t n) {
  uint32_t j = 0;
  v128_t bad = wasm_i32x4_splat(0);
  for (; j + 64 <= n; j += 64) {
#pragma clang loop unroll(full)
    for (int q = 0; q < 64; q += 4) {
      v128_t a = wasm_v128_load(w + j + q);
      a = wasm_f32x4_sub(a, a);
      bad = wasm_v128_or(bad, wasm_f32x4_ne(a, a));
    }
  }
  if (wasm_v128_any_true(bad)) return 0;
  for (; j < n; j++)
    if (!isfinite(w[j])) return 0;
  return 1;
}

static int agg_inputs(sp_call *c, agg_io *io) {
  const sp_tensor *w = sp_input(c, "weights"), *n = sp_input(c, "counts");
  const sp_tensor *g = sp_input(c, "global"), *s = sp_input(c, "state");
  if (!w || w->dtype != SP_F32 || w->ndim != 2) return sp_fail(c, "weights must be f32 [updates, parameters]");
  if (!n || n->dtype != SP_F64 || n->ndim != 1 || n->shape[0] != w->shape[0])
    return sp_fail(c, "counts must be f64 [updates]");
  io->k = w->shape[0];
  io->n = w->shape[1];
  io->w = w->data;
  io->count = n->data;
  if (g) {
    if (g->dtype != SP_F32 || g->elems != io->n) return sp_fail(c, "global must be f32 [parameters]");
    io->global = g->data;
  }
  if (s) {
    if (s->dtype != SP_F32 || s->elems != io->n) return sp_fail(c, "state must be f32 [parameters]");
    io->state = s->data;
  }
  io->use = sp_alloc_call(c, (size_t)io->k * sizeof(uint32_t));
  if (!io->use) return sp_fail(c, "out of memory");
  char excluded[256] = "";
  size_t el = 0;
  for (uint32_t i = 0; i < io->k; i++) {
    double cnt = io->count[i];
    if (cnt > 0 && isfinite(cnt) && finite_row(io->w + (uint64_t)i * io->n, io->n)) {
      io->use[io->nuse++] = i;
      io->samples += cnt;
    } else if (el < sizeof excluded - 12) {
      el += snprintf(excluded + el, sizeof excluded - el, el ? ",%u" : "%u", i);
    }
  }
  if (el) sp_meta(c, "excluded", excluded);
  if (io->nuse == 0) return sp_fail(c, "no usable update: every one has zero samples or non-finite weights");
  char buf[32];
  snprintf(buf, sizeof buf, "%u", io->nuse);
  sp_meta(c, "clients", buf);
  snprintf(buf, sizeof buf, "%.0f", io->samples);
  sp_meta(c, "samples", buf);
  return 0;
}

static float *fedavg(sp_call *c, agg_io *io) {
  float *out = sp_alloc_call(c, (size_t)io->n * sizeof(float));
  if (!out) return 0;
  for (uint32_t u = 0; u < io->nuse; u++) {
    uint32_t i = io->use[u];
    float coef = (float)(io->count[i] / io->samples);
    const float *w = io->w + (uint64_t)i * io->n;
    v128_t cv = wasm_f32x4_splat(coef);
    uint32_t j = 0;
    for (; j + 64 <= io->n; j += 64) {
      /* the same per-element multiply then add as the scalar tail */
#pragma clang loop unroll(full)
      for (int q = 0; q < 64; q += 4)
        wasm_v128_store(out + j + q, wasm_f32x4_add(wasm_v128_load(out + j + q), wasm_f32x4_mul(cv, wasm_v128_load(w + j + q))));
    }
    for (; j < io->n; j++) out[j] += coef * w[j];
  }
  return out;
}

/* cmpx orders rows a and b of a block, lane by lane: 64 coordinates at once. */
static inline void cmpx(float *a, float *b) {
#pragma clang loop unroll(full)
  for (int q = 0; q < BLOCK; q += 4) {
    v128_t x = wasm_v128_load(a + q), y = wasm_v128_load(b + q);
    wasm_v128_store(a + q, wasm_f32x4_min(x, y));
    wasm_v128_store(b + q, wasm_f32x4_max(x, y));
  }
}

static void sort_floats(float *v, uint32_t n) {
  for (uint32_t i = 1; i < n; i++) {
    float x = v[i];
    uint32_t j = i;
    for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
    v[j] = x;
  }
}

static float column_value(const float *col, uint32_t m, uint32_t trim, int median) {
  if (median) return m % 2 ? col[m / 2] : (col[m / 2 - 1] + col[m / 2]) / 2;
  float s = 0;
  for (uint32_t u = trim; u < m - trim; u++) s += col[u];
  return s / (float)(m - 2 * trim);
}

/*
 * column_rule sorts every coordinate's values across the updates and takes
 * the median or the trimmed mean. Whole blocks of 64 coordinates go through
 * a sorting network (insertion order of compare-exchanges, m(m-1)/2 of them)
 * with SIMD min/max; the tail goes one coordinate at a time. Both give the
 * sorted values, so both give the same result.
 */
static float *column_rule(sp_call *c, agg_io *io, uint32_t trim, int median) {
  uint32_t m = io->nuse, n = io->n;
  float *out = sp_alloc_call(c, (size_t)n * sizeof(float));
  float *blk = sp_alloc_call(c, (size_t)m * BLOCK * sizeof(float));
  float *col = sp_alloc_call(c, (size_t)m * sizeof(float));
  if (!out || !blk || !col) return 0;
  uint32_t j0 = 0;
  for (; j0 + BLOCK <= n; j0 += BLOCK) {
    for (uint32_t u = 0; u < m; u++) {
      const float *src = io->w + (uint64_t)io->use[u] * n + j0;
#pragma clang loop unroll(full)
      for (int q = 0; q < BLOCK; q += 4) wasm_v128_store(blk + u * BLOCK + q, wasm_v128_load(src + q));
    }
    for (uint32_t i = 1; i < m; i++)
      for (uint32_t k = i; k > 0; k--) cmpx(blk + (k - 1) * BLOCK, blk + k * BLOCK);
    if (median) {
      const float *lo = blk + (m % 2 ? m / 2 : m / 2 - 1) * BLOCK, *hi = blk + (m / 2) * BLOCK;
      v128_t two = wasm_f32x4_splat(2);
#pragma clang loop unroll(full)
      for (int q = 0; q < BLOCK; q += 4) {
        v128_t v = m % 2 ? wasm_v128_load(hi + q) : wasm_f32x4_div(wasm_f32x4_add(wasm_v128_load(lo + q), wasm_v128_load(hi + q)), two);
        wasm_v128_store(out + j0 + q, v);
      }
    } else {
      v128_t sum[BLOCK / 4];
#pragma clang loop unroll(full)
      for (int q = 0; q < BLOCK / 4; q++) sum[q] = wasm_f32x4_splat(0);
      for (uint32_t u = trim; u < m - trim; u++) {
#pragma clang loop unroll(full)
        for (int q = 0; q < BLOCK / 4; q++) sum[q] = wasm_f32x4_add(sum[q], wasm_v128_load(blk + u * BLOCK + 4 * q));
      }
      v128_t d = wasm_f32x4_splat((float)(m - 2 * trim));
#pragma clang loop unroll(full)
      for (int q = 0; q < BLOCK / 4; q++) wasm_v128_store(out + j0 + 4 * q, wasm_f32x4_div(sum[q], d));
    }
  }
  for (uint32_t j = j0; j < n; j++) {
    for (uint32_t u = 0; u < m; u++) col[u] = io->w[(uint64_t)io->use[u] * n + j];
    sort_floats(col, m);
    out[j] = column_value(col, m, trim, median);
  }
  return out;
}

int sp_aggregate(sp_call *c) {
  agg_io io = {0};
  if (agg_inputs(c, &io)) return -1;
  sp_str who = c->req.plugin;
  float *out = 0;
  if (sp_streq(who, "FedAvg")) {
    out = fedavg(c, &io);
  } else if (sp_streq(who, "FedAvgM")) {
    double lr, mom;
    if (sp_param_f64(c, "server_lr", 1.0, &lr) || sp_param_f64(c, "momentum", 0.9, &mom)) return -1;
    if (!(lr > 0)) return sp_fail(c, "server_lr must be above 0");
    if (!(mom >= 0 && mom < 1)) return sp_fail(c, "momentum must be in [0, 1)");
    if (!io.global) return sp_fail(c, "FedAvgM needs the global weights of the round");
    out = fedavg(c, &io);
    float *v = sp_alloc_call(c, (size_t)io.n * sizeof(float));
    if (!out || !v) return sp_fail(c, "out of memory");
    float m = (float)mom, l = (float)lr;
    for (uint32_t j = 0; j < io.n; j++) {
      float prev = io.state ? io.state[j] : 0;
      float vj = m * prev + (io.global[j] - out[j]);
      v[j] = vj;
      out[j] = io.global[j] - l * vj;
    }
    sp_output(c, "state", SP_F32, v, io.n);
  } else if (sp_streq(who, "Median")) {
    out = column_rule(c, &io, 0, 1);
  } else if (sp_streq(who, "TrimmedMean")) {
    double r;
    if (sp_param_f64(c, "trim_ratio", 0.1, &r)) return -1;
    if (!(r >= 0 && r < 0.5)) return sp_fail(c, "trim_ratio must be in [0, 0.5)");
    uint32_t trim = (uint32_t)floor(r * io.nuse);
    char buf[32];
    snprintf(buf, sizeof buf, "%u", trim);
    sp_meta(c, "trimmed_each_end", buf);
    out = column_rule(c, &io, trim, 0);
  } else {
    return sp_fail(c, "no such aggregator in this module");
  }
  if (!out) return sp_fail(c, "out of memory");
  sp_output(c, "weights", SP_F32, out, io.n);
  return 0;
}
