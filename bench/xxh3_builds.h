// The XXH3 builds xxh3_bench compares, each behind plain function pointers so one set of
// loops runs over all of them.
//
// Every build lives in its own translation unit. xxHash compiled with XXH_INLINE_ALL is
// static to the unit that includes it, so two inline builds with different target flags
// can sit in one binary; and the -mavx2 unit must share no inline function with the rest
// of the binary, or the linker could keep its AVX2 copy for callers on any CPU. So this
// header declares only plain functions and types, and includes no xxHash header.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hasync::bench {

struct Xxh3Digest128 {
  uint64_t low = 0;
  uint64_t high = 0;
};

struct Xxh3Build {
  const char* name;
  // One-shot XXH3-64 and XXH3-128: lock-record fingerprints, xattr sets, block hashes.
  uint64_t (*hash64)(const void* data, size_t len);
  Xxh3Digest128 (*hash128)(const void* data, size_t len);
  // XXH3-128 through a state on the stack (reset, update per piece of at most
  // `piece_bytes`, digest): how the engine hashes a whole file as it reads or sends it.
  Xxh3Digest128 (*stream128)(const void* data, size_t len, size_t piece_bytes);
};

// Debian's libxxhash.so through its ordinary entry points: the baseline.
extern const Xxh3Build kXxh3Shared;
// xxHash compiled into the caller (XXH_INLINE_ALL) with the project's flags: what
// base/hash.h builds off x86-64 (and built everywhere before 05ede38).
extern const Xxh3Build kXxh3Inline;

#if HASYNC_BENCH_XXH3_X86
// libxxhash.so's *_dispatch entry points (xxh_x86dispatch.h), which pick the widest
// vector code the CPU runs when first called: what base/hash.h uses on x86-64.
extern const Xxh3Build kXxh3SharedDispatch;
// xxHash compiled inline in a unit built with -mavx2; only run where the CPU has AVX2.
extern const Xxh3Build kXxh3InlineAvx2;
#endif

}  // namespace hasync::bench
