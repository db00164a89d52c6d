/* A hostile test plugin: the metadata of its mine result nests eight million
 * arrays deep, enough to exhaust the stack of a recursive decoder. */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#define SP_NO_MINE
#include "sedna_plugin.h"

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin(b, "Hostile-deepmeta", "HardExampleMiner", "0.0.1", "misbehaves on purpose", 0, 0);
}

#define DEPTH 8000000

__attribute__((export_name("mine"))) uint64_t mine(uint32_t p, uint32_t n) {
  /* {"junk": [[[...nil...]]]}: a key the host does not know, which a
   * decoder skips, recursing */
  uint32_t mlen = 1 + 5 + DEPTH + 1;
  uint32_t len = (12 + mlen + 7) & ~7u;
  uint8_t *out = calloc(1, len);
  if (!out) return 0;
  uint32_t zero = 0;
  memcpy(out, "SPF1", 4);
  memcpy(out + 4, &mlen, 4);
  memcpy(out + 8, &zero, 4);
  uint8_t *m = out + 12;
  *m++ = 0x81;
  *m++ = 0xa4;
  memcpy(m, "junk", 4);
  m += 4;
  memset(m, 0x91, DEPTH);
  m += DEPTH;
  *m = 0xc0;
  return (uint64_t)(uintptr_t)out << 32 | len;
}
