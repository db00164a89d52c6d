/* A hostile test plugin: its mine export misbehaves (membomb). */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#include "sedna_plugin.h"

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin(b, "Hostile-membomb", "HardExampleMiner", "0.0.1", "misbehaves on purpose", 0, 0);
}

int sp_mine(sp_call *c) {
  /* takes memory until there is none, touching every page, then aborts;
   * the chain through a volatile keeps the compiler from eliding it */
  static void *volatile head;
  for (;;) {
    char *p = malloc(1 << 20);
    if (!p) abort();
    memset(p, 1, 1 << 20);
    *(void **)p = head;
    head = p;
  }
  return sp_fail(c, "unreachable");
}
