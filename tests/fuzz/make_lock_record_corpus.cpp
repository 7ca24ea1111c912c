// Writes the seed corpus for lock_record_fuzz: a few canonical lock-record encodings
// (typical, empty strings, maximal probe token, negative clock) so the fuzzer starts
// from inputs the decoder accepts. Usage: make_lock_record_corpus <output dir>.
// The output is committed under tests/fuzz/corpus/lock_record/; rerun it when the
// record layout changes (kLockRecordFormatVersion).
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "lockwin/limits.h"
#include "lockwin/lock_record.h"

namespace {

using namespace hasync;
using namespace hasync::lockwin;

bool WriteFile(const std::string& path, const std::vector<std::byte>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

std::vector<std::pair<std::string, LockRecord>> Seeds() {
  LockRecord typical;
  typical.epoch = 7;
  typical.node_id = 2;
  typical.change_seq = 123456;
  typical.beat = 9001;
  typical.probe_token = "job 4711 alice 1732650000";
  typical.last_change = {"job_state/job.4711/script", 1834, 0x1122334455667788u};
  typical.probe_ok = true;
  typical.probe_latency_us = 3150;
  typical.monotonic_ns = 987654321012;

  LockRecord empty;  // all zero, both strings empty: the shortest encoding

  LockRecord full_token = typical;
  full_token.probe_token = std::string(kProbeTokenMax, 'x');
  full_token.last_change.path = "hash.9/job.123456789/environment";
  full_token.probe_ok = false;

  LockRecord stalled = typical;  // a sick primary: probe failing, clock far along
  stalled.epoch = UINT64_MAX;
  stalled.probe_token = std::string("\0\xff\n", 3);
  stalled.probe_ok = false;
  stalled.probe_latency_us = UINT32_MAX;
  stalled.monotonic_ns = INT64_MIN;

  return {{"typical", typical}, {"empty", empty}, {"full_token", full_token}, {"stalled", stalled}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  for (const auto& [name, record] : Seeds()) {
    Result<std::vector<std::byte>> bytes = EncodeLockRecord(record);
    if (!bytes.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), bytes.status().ToString().c_str());
      return 1;
    }
    if (!WriteFile(dir + "/" + name, *bytes)) {
      std::perror((dir + "/" + name).c_str());
      return 1;
    }
  }
  return 0;
}
