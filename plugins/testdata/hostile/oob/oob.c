/* A hostile test plugin: its mine result points outside its memory. */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#define SP_NO_MINE
#include "sedna_plugin.h"

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin(b, "Hostile-oob", "HardExampleMiner", "0.0.1", "misbehaves on purpose", 0, 0);
}

__attribute__((export_name("mine"))) uint64_t mine(uint32_t p, uint32_t n) {
  return (uint64_t)0xfffff000u << 32 | 65536;
}
