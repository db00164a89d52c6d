/* A hostile test plugin: lacks the alloc and free exports. */
#include <stdint.h>
__attribute__((export_name("abi_version"))) uint32_t abi_version(void) { return 1; }
__attribute__((export_name("manifest"))) uint64_t manifest(void) { return 0; }
__attribute__((export_name("mine"))) uint64_t mine(uint32_t p, uint32_t n) { return 0; }
