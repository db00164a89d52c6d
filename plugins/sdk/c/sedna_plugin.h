/*
 * sedna_plugin.h - the C side of the Sedna-Go plugin ABI v1 (docs/PLUGINS.md).
 *
 * One header, no other dependency than wasi-libc. Build a plugin with:
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all \
 *         -I plugins/sdk/c -o my.wasm my.c
 *
 * A plugin module defines SP_IMPLEMENTATION in exactly one file before
 * including this header, and provides:
 *
 *   void sp_manifest(sp_buf *out);               // msgpack manifest
 *   int  sp_mine(sp_call *c);                    // if it holds miners
 *   int  sp_aggregate(sp_call *c);               // if it holds aggregators
 *
 * sp_mine/sp_aggregate read c->req and c->in, write c->out_tensors and
 * reasons, and return 0, or set an error with sp_fail and return -1.
 */
#ifndef SEDNA_PLUGIN_H
#define SEDNA_PLUGIN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_ABI_VERSION 1
#define SP_MAX_TENSORS 16
#define SP_MAX_PARAMS 32
#define SP_MAX_DIMS 8

enum { SP_F32 = 1, SP_F64 = 2, SP_I32 = 3, SP_U32 = 4, SP_I64 = 5, SP_U8 = 6 };

/* A growable byte buffer. */
typedef struct {
  uint8_t *p;
  uint32_t len, cap;
  int oom;
} sp_buf;

typedef struct {
  const char *name;
  uint32_t name_len;
  uint8_t dtype, ndim;
  uint32_t shape[SP_MAX_DIMS];
  uint64_t elems;
  const void *data; /* in place in the input frame, 8-byte aligned */
} sp_tensor;

typedef struct {
  const char *s;
  uint32_t n;
} sp_str;

typedef struct {
  sp_str plugin;
  sp_str keys[SP_MAX_PARAMS], vals[SP_MAX_PARAMS];
  int nparams;
  uint64_t seed;
  int64_t round;
} sp_request;

typedef struct {
  sp_request req;
  sp_tensor in[SP_MAX_TENSORS];
  int nin;
  /* outputs: tensors (data owned by the plugin until the call returns) */
  const char *out_name[SP_MAX_TENSORS];
  uint8_t out_dtype[SP_MAX_TENSORS];
  uint32_t out_len[SP_MAX_TENSORS];
  const void *out_data[SP_MAX_TENSORS];
  int nout;
  sp_buf reasons; /* msgpack [index, text] pairs, count in nreasons */
  int nreasons;
  sp_buf meta; /* msgpack key/value strings, count in nmeta */
  int nmeta;
  char error[256];
  void *owned[2 * SP_MAX_TENSORS];
  int nowned;
} sp_call;

/* --- buffers and msgpack writing --- */
void sp_put(sp_buf *b, const void *p, uint32_t n);
void sp_put_u8(sp_buf *b, uint8_t c);
void sp_mp_map(sp_buf *b, uint32_t n);
void sp_mp_array(sp_buf *b, uint32_t n);
void sp_mp_str(sp_buf *b, const char *s);
void sp_mp_int(sp_buf *b, int64_t v);

/* --- reading a call --- */
const sp_tensor *sp_input(const sp_call *c, const char *name);
/* sp_param_f64 parses parameter key as a number; def when absent; returns
 * -1 and sets the call's error when the value is not a number. */
int sp_param_f64(sp_call *c, const char *key, double def, double *out);
int sp_streq(sp_str s, const char *lit);

/* --- writing a result --- */
void sp_output(sp_call *c, const char *name, uint8_t dtype, const void *data, uint32_t elems);
void sp_reason(sp_call *c, uint32_t index, const char *text);
void sp_meta(sp_call *c, const char *key, const char *val);
int sp_fail(sp_call *c, const char *text);
/* sp_alloc_call allocates memory freed when the call's result is written. */
void *sp_alloc_call(sp_call *c, size_t n);

/* provided by the plugin */
void sp_manifest(sp_buf *out);
int sp_mine(sp_call *c);
int sp_aggregate(sp_call *c);

#ifdef SP_IMPLEMENTATION

static uint32_t sp_grow(sp_buf *b, uint32_t n) {
  if (b->oom) return 0;
  if (b->len + n > b->cap) {
    uint32_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return 0;
    }
    b->p = p;
    b->cap = cap;
  }
  return 1;
}

void sp_put(sp_buf *b, const void *p, uint32_t n) {
  if (!sp_grow(b, n)) return;
  memcpy(b->p + b->len, p, n);
  b->len += n;
}
void sp_put_u8(sp_buf *b, uint8_t c) { sp_put(b, &c, 1); }
static void sp_put_be(sp_buf *b, uint64_t v, int n) {
  uint8_t t[8];
  for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  sp_put(b, t, n);
}
static void sp_put_le32(sp_buf *b, uint32_t v) { sp_put(b, &v, 4); }
static void sp_pad8(sp_buf *b) {
  static const uint8_t z[8];
  if (b->len % 8) sp_put(b, z, 8 - b->len % 8);
}

void sp_mp_map(sp_buf *b, uint32_t n) {
  if (n < 16) sp_put_u8(b, 0x80 | n);
  else if (n <= 0xffff) { sp_put_u8(b, 0xde); sp_put_be(b, n, 2); }
  else { sp_put_u8(b, 0xdf); sp_put_be(b, n, 4); }
}
void sp_mp_array(sp_buf *b, uint32_t n) {
  if (n < 16) sp_put_u8(b, 0x90 | n);
  else if (n <= 0xffff) { sp_put_u8(b, 0xdc); sp_put_be(b, n, 2); }
  else { sp_put_u8(b, 0xdd); sp_put_be(b, n, 4); }
}
void sp_mp_str(sp_buf *b, const char *s) {
  uint32_t n = (uint32_t)strlen(s);
  if (n < 32) sp_put_u8(b, 0xa0 | n);
  else if (n <= 0xff) { sp_put_u8(b, 0xd9); sp_put_u8(b, n); }
  else if (n <= 0xffff) { sp_put_u8(b, 0xda); sp_put_be(b, n, 2); }
  else { sp_put_u8(b, 0xdb); sp_put_be(b, n, 4); }
  sp_put(b, s, n);
}
void sp_mp_int(sp_buf *b, int64_t v) {
  if (v >= 0 && v <= 0x7f) sp_put_u8(b, (uint8_t)v);
  else if (v < 0 && v >= -32) sp_put_u8(b, (uint8_t)(int8_t)v);
  else { sp_put_u8(b, 0xd3); sp_put_be(b, (uint64_t)v, 8); }
}

/* --- msgpack reading (only what request metadata needs; the rest skipped) --- */
typedef struct {
  const uint8_t *p;
  uint32_t n, off;
  int bad;
} sp_rd;

static uint64_t sp_rd_be(sp_rd *r, int n) {
  if (r->bad || r->n - r->off < (uint32_t)n) { r->bad = 1; return 0; }
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | r->p[r->off + i];
  r->off += n;
  return v;
}
static int sp_rd_u8(sp_rd *r) { return (int)sp_rd_be(r, 1); }

static uint32_t sp_rd_map(sp_rd *r) {
  int c = sp_rd_u8(r);
  if ((c & 0xf0) == 0x80) return c & 0x0f;
  if (c == 0xde) return (uint32_t)sp_rd_be(r, 2);
  if (c == 0xdf) return (uint32_t)sp_rd_be(r, 4);
  r->bad = 1;
  return 0;
}
static sp_str sp_rd_str(sp_rd *r) {
  sp_str s = {0, 0};
  int c = sp_rd_u8(r);
  uint32_t n;
  if ((c & 0xe0) == 0xa0) n = c & 0x1f;
  else if (c == 0xd9 || c == 0xc4) n = (uint32_t)sp_rd_be(r, 1);
  else if (c == 0xda || c == 0xc5) n = (uint32_t)sp_rd_be(r, 2);
  else if (c == 0xdb || c == 0xc6) n = (uint32_t)sp_rd_be(r, 4);
  else { r->bad = 1; return s; }
  if (r->bad || r->n - r->off < n) { r->bad = 1; return s; }
  s.s = (const char *)r->p + r->off;
  s.n = n;
  r->off += n;
  return s;
}
static int64_t sp_rd_int(sp_rd *r) {
  int c = sp_rd_u8(r);
  if (c <= 0x7f) return c;
  if (c >= 0xe0) return (int8_t)c;
  if (c >= 0xcc && c <= 0xcf) return (int64_t)sp_rd_be(r, 1 << (c - 0xcc));
  if (c == 0xd0) return (int8_t)sp_rd_be(r, 1);
  if (c == 0xd1) return (int16_t)sp_rd_be(r, 2);
  if (c == 0xd2) return (int32_t)sp_rd_be(r, 4);
  if (c == 0xd3) return (int64_t)sp_rd_be(r, 8);
  r->bad = 1;
  return 0;
}
static void sp_rd_skip(sp_rd *r, int depth) {
  if (depth > 32 || r->bad || r->off >= r->n) { r->bad = 1; return; }
  int c = r->p[r->off];
  if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) { r->off++; return; }
  if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf) {
    uint32_t n = sp_rd_map(r);
    for (uint32_t i = 0; i < 2 * n && !r->bad; i++) sp_rd_skip(r, depth + 1);
    return;
  }
  if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd) {
    r->off++;
    uint32_t n = (c & 0xf0) == 0x90 ? (uint32_t)(c & 0x0f) : (uint32_t)sp_rd_be(r, c == 0xdc ? 2 : 4);
    for (uint32_t i = 0; i < n && !r->bad; i++) sp_rd_skip(r, depth + 1);
    return;
  }
  if ((c & 0xe0) == 0xa0 || c == 0xd9 || c == 0xda || c == 0xdb || c == 0xc4 || c == 0xc5 || c == 0xc6) {
    sp_rd_str(r);
    return;
  }
  if (c >= 0xcc && c <= 0xd3) { r->off++; sp_rd_be(r, 1 << ((c - 0xcc) & 3)); return; }
  if (c == 0xca) { r->off++; sp_rd_be(r, 4); return; }
  if (c == 0xcb) { r->off++; sp_rd_be(r, 8); return; }
  r->bad = 1;
}

int sp_streq(sp_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && memcmp(s.s, lit, n) == 0;
}

static int sp_parse_request(sp_request *q, const uint8_t *p, uint32_t n) {
  sp_rd r = {p, n, 0, 0};
  memset(q, 0, sizeof *q);
  uint32_t m = sp_rd_map(&r);
  for (uint32_t i = 0; i < m && !r.bad; i++) {
    sp_str k = sp_rd_str(&r);
    if (sp_streq(k, "plugin")) q->plugin = sp_rd_str(&r);
    else if (sp_streq(k, "seed")) q->seed = (uint64_t)sp_rd_int(&r);
    else if (sp_streq(k, "round")) q->round = sp_rd_int(&r);
    else if (sp_streq(k, "params")) {
      uint32_t np = sp_rd_map(&r);
      for (uint32_t j = 0; j < np && !r.bad; j++) {
        sp_str pk = sp_rd_str(&r), pv = sp_rd_str(&r);
        if (q->nparams < SP_MAX_PARAMS) {
          q->keys[q->nparams] = pk;
          q->vals[q->nparams] = pv;
          q->nparams++;
        }
      }
    } else sp_rd_skip(&r, 0);
  }
  return r.bad ? -1 : 0;
}

static uint32_t sp_le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static int sp_dsize(uint8_t d) {
  switch (d) {
  case SP_F32: case SP_I32: case SP_U32: return 4;
  case SP_F64: case SP_I64: return 8;
  case SP_U8: return 1;
  }
  return 0;
}

/* sp_parse_frame checks every length against the frame. */
static const char *sp_parse_frame(sp_call *c, const uint8_t *p, uint32_t n) {
  if (n < 12 || memcmp(p, "SPF1", 4) != 0) return "input is not an SPF1 frame";
  uint32_t mlen = sp_le32(p + 4), count = sp_le32(p + 8);
  if (mlen > n - 12) return "metadata overruns the frame";
  if (sp_parse_request(&c->req, p + 12, mlen) != 0) return "malformed request metadata";
  if (count > SP_MAX_TENSORS) return "too many tensors";
  uint64_t off = (12 + (uint64_t)mlen + 7) & ~7ull;
  for (uint32_t i = 0; i < count; i++) {
    sp_tensor *t = &c->in[i];
    if (off + 4 > n) return "tensor header overruns the frame";
    uint32_t nlen = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8;
    t->dtype = p[off + 2];
    t->ndim = p[off + 3];
    off += 4;
    if (!sp_dsize(t->dtype) || t->ndim > SP_MAX_DIMS) return "bad tensor type or rank";
    if (off + 4ull * t->ndim + nlen > n) return "tensor header overruns the frame";
    t->elems = 1;
    for (int d = 0; d < t->ndim; d++) {
      t->shape[d] = sp_le32(p + off + 4 * d);
      t->elems *= t->shape[d];
      if (t->elems > n) return "tensor larger than the frame";
    }
    off += 4ull * t->ndim;
    t->name = (const char *)p + off;
    t->name_len = nlen;
    off = (off + nlen + 7) & ~7ull;
    uint64_t size = t->elems * (uint64_t)sp_dsize(t->dtype);
    if (off > n || size > n - off) return "tensor data overrun the frame";
    t->data = p + off;
    off = (off + size + 7) & ~7ull;
    c->nin++;
  }
  return 0;
}

const sp_tensor *sp_input(const sp_call *c, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < c->nin; i++)
    if (c->in[i].name_len == n && memcmp(c->in[i].name, name, n) == 0) return &c->in[i];
  return 0;
}

int sp_param_f64(sp_call *c, const char *key, double def, double *out) {
  *out = def;
  for (int i = 0; i < c->req.nparams; i++) {
    if (!sp_streq(c->req.keys[i], key)) continue;
    char tmp[64];
    sp_str v = c->req.vals[i];
    if (v.n == 0 || v.n >= sizeof tmp) break;
    memcpy(tmp, v.s, v.n);
    tmp[v.n] = 0;
    char *end;
    double d = strtod(tmp, &end);
    if (*end != 0 || d != d) break;
    *out = d;
    return 0;
  }
  for (int i = 0; i < c->req.nparams; i++)
    if (sp_streq(c->req.keys[i], key)) {
      char msg[128];
      snprintf(msg, sizeof msg, "parameter %s is not a number", key);
      return sp_fail(c, msg);
    }
  return 0;
}

void sp_output(sp_call *c, const char *name, uint8_t dtype, const void *data, uint32_t elems) {
  if (c->nout >= SP_MAX_TENSORS) return;
  c->out_name[c->nout] = name;
  c->out_dtype[c->nout] = dtype;
  c->out_data[c->nout] = data;
  c->out_len[c->nout] = elems;
  c->nout++;
}

void sp_reason(sp_call *c, uint32_t index, const char *text) {
  sp_mp_array(&c->reasons, 2);
  sp_mp_int(&c->reasons, index);
  sp_mp_str(&c->reasons, text);
  c->nreasons++;
}

void sp_meta(sp_call *c, const char *key, const char *val) {
  sp_mp_str(&c->meta, key);
  sp_mp_str(&c->meta, val);
  c->nmeta++;
}

void *sp_alloc_call(sp_call *c, size_t n) {
  if (c->nowned >= 2 * SP_MAX_TENSORS) return 0;
  void *p = calloc(n ? n : 1, 1);
  if (p) c->owned[c->nowned++] = p;
  return p;
}

int sp_fail(sp_call *c, const char *text) {
  strncpy(c->error, text, sizeof c->error - 1);
  return -1;
}

static uint64_t sp_finish(sp_call *c) {
  sp_buf meta = {0}, out = {0};
  int n = (c->error[0] != 0) + (c->nreasons > 0) + (c->nmeta > 0);
  sp_mp_map(&meta, n);
  if (c->error[0]) { sp_mp_str(&meta, "error"); sp_mp_str(&meta, c->error); }
  if (c->nreasons) {
    sp_mp_str(&meta, "reasons");
    sp_mp_array(&meta, c->nreasons);
    sp_put(&meta, c->reasons.p, c->reasons.len);
  }
  if (c->nmeta) {
    sp_mp_str(&meta, "metadata");
    sp_mp_map(&meta, c->nmeta);
    sp_put(&meta, c->meta.p, c->meta.len);
  }
  int nout = c->error[0] ? 0 : c->nout;
  sp_put(&out, "SPF1", 4);
  sp_put_le32(&out, meta.len);
  sp_put_le32(&out, nout);
  sp_put(&out, meta.p, meta.len);
  sp_pad8(&out);
  for (int i = 0; i < nout; i++) {
    uint32_t nl = (uint32_t)strlen(c->out_name[i]);
    sp_put_u8(&out, nl & 0xff);
    sp_put_u8(&out, nl >> 8);
    sp_put_u8(&out, c->out_dtype[i]);
    sp_put_u8(&out, 1);
    sp_put_le32(&out, c->out_len[i]);
    sp_put(&out, c->out_name[i], nl);
    sp_pad8(&out);
    sp_put(&out, c->out_data[i], c->out_len[i] * sp_dsize(c->out_dtype[i]));
    sp_pad8(&out);
  }
  free(meta.p);
  free(c->reasons.p);
  free(c->meta.p);
  if (out.oom || meta.oom) { free(out.p); return 0; }
  return (uint64_t)(uintptr_t)out.p << 32 | out.len;
}

typedef int (*sp_fn)(sp_call *);

static uint64_t sp_run(sp_fn fn, uint32_t ptr, uint32_t len) {
  sp_call *c = calloc(1, sizeof *c);
  if (!c) return 0;
  const char *bad = sp_parse_frame(c, (const uint8_t *)(uintptr_t)ptr, len);
  if (bad) sp_fail(c, bad);
  else if (!fn) sp_fail(c, "this module has no plugin of that kind");
  else fn(c);
  uint64_t r = sp_finish(c);
  for (int i = 0; i < c->nowned; i++) free(c->owned[i]);
  free(c);
  return r;
}

__attribute__((export_name("abi_version"))) uint32_t sp_abi_version(void) { return SP_ABI_VERSION; }
__attribute__((export_name("alloc"))) uint32_t sp_alloc(uint32_t n) { return (uint32_t)(uintptr_t)malloc(n ? n : 1); }
__attribute__((export_name("free"))) void sp_free(uint32_t p, uint32_t n) { (void)n; free((void *)(uintptr_t)p); }
__attribute__((export_name("manifest"))) uint64_t sp_manifest_export(void) {
  sp_buf b = {0};
  sp_manifest(&b);
  if (b.oom) return 0;
  return (uint64_t)(uintptr_t)b.p << 32 | b.len;
}

#ifndef SP_NO_MINE
__attribute__((export_name("mine"))) uint64_t sp_mine_export(uint32_t p, uint32_t n) { return sp_run(sp_mine, p, n); }
#endif
#ifndef SP_NO_AGGREGATE
__attribute__((export_name("aggregate"))) uint64_t sp_aggregate_export(uint32_t p, uint32_t n) { return sp_run(sp_aggregate, p, n); }
#endif

/* --- manifest helpers --- */
typedef struct {
  const char *key, *def, *desc;
} sp_param_info;

/* sp_manifest_plugin_caps writes one plugin's entry, with the capabilities
 * it asks for ("clock", "random", "env", "fs"). */
static void sp_manifest_plugin_caps(sp_buf *b, const char *name, const char *kind, const char *version,
                                    const char *desc, const sp_param_info *params, int nparams,
                                    const char *const *caps, int ncaps) {
  sp_mp_map(b, 6);
  sp_mp_str(b, "name"); sp_mp_str(b, name);
  sp_mp_str(b, "kind"); sp_mp_str(b, kind);
  sp_mp_str(b, "version"); sp_mp_str(b, version);
  sp_mp_str(b, "description"); sp_mp_str(b, desc);
  sp_mp_str(b, "parameters");
  sp_mp_array(b, nparams);
  for (int i = 0; i < nparams; i++) {
    sp_mp_map(b, 3);
    sp_mp_str(b, "key"); sp_mp_str(b, params[i].key);
    sp_mp_str(b, "default"); sp_mp_str(b, params[i].def);
    sp_mp_str(b, "description"); sp_mp_str(b, params[i].desc);
  }
  sp_mp_str(b, "capabilities");
  sp_mp_array(b, ncaps);
  for (int i = 0; i < ncaps; i++) sp_mp_str(b, caps[i]);
}

/* sp_manifest_plugin writes one plugin's entry. */
static void sp_manifest_plugin(sp_buf *b, const char *name, const char *kind, const char *version,
                               const char *desc, const sp_param_info *params, int nparams) {
  sp_manifest_plugin_caps(b, name, kind, version, desc, params, nparams, 0, 0);
}

/* sp_manifest_begin starts a manifest of n plugins. */
static void sp_manifest_begin(sp_buf *b, int n) {
  sp_mp_map(b, 2);
  sp_mp_str(b, "abi"); sp_mp_int(b, SP_ABI_VERSION);
  sp_mp_str(b, "plugins"); sp_mp_array(b, n);
}

#endif /* SP_IMPLEMENTATION */
#endif /* SEDNA_PLUGIN_H */
