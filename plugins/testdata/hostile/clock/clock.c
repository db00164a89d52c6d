/* A test plugin that asks for the real clock: its score is the wall clock's
 * seconds, so a test can tell the real clock from wazero's fake one. */
#define SP_IMPLEMENTATION
#define SP_NO_AGGREGATE
#include "sedna_plugin.h"
#include <time.h>

static const char *const caps[] = {"clock"};

void sp_manifest(sp_buf *b) {
  sp_manifest_begin(b, 1);
  sp_manifest_plugin_caps(b, "Clock", "HardExampleMiner", "0.0.1", "reads the wall clock", 0, 0, caps, 1);
}

int sp_mine(sp_call *c) {
  static float now[1];
  static uint8_t hard[1];
  now[0] = (float)time(0);
  sp_output(c, "hard", SP_U8, hard, 1);
  sp_output(c, "score", SP_F32, now, 1);
  return 0;
}
