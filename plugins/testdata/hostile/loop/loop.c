/* A hostile test plugin: its mine export misbehaves (loop). */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#include "sedna_plugin.h"

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin(b, "Hostile-loop", "HardExampleMiner", "0.0.1", "misbehaves on purpose", 0, 0);
}

int sp_mine(sp_call *c) {
  /* spins until the host stops it */
  volatile uint64_t n = 0;
  for (;;) n++;
  return sp_fail(c, "unreachable");
}
