/* A hostile test plugin: its mine export misbehaves (trap). */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#include "sedna_plugin.h"

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin(b, "Hostile-trap", "HardExampleMiner", "0.0.1", "misbehaves on purpose", 0, 0);
}

int sp_mine(sp_call *c) {
  /* the C equivalent of a panic */
  if (c->req.seed != 12345) __builtin_trap();
  return sp_fail(c, "unreachable");
}
