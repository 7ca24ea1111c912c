// Writes the seed corpus for frame_decode_fuzz: every sample frame of tests/wire/samples.h
// encoded as a stream input ("frame_<i>_<TYPE>") and as a selector + body input
// ("body_<i>_<TYPE>"), see frame_types.h. Usage: make_frame_corpus <output dir>.
// The output is committed under tests/fuzz/corpus/frame_decode/; rerun it when the
// message set changes.
#include <cstdio>
#include <string>

#include "tests/fuzz/frame_types.h"
#include "tests/wire/samples.h"
#include "wire/frame.h"

namespace {

using namespace hasync::wire;

bool WriteFile(const std::string& path, const std::vector<std::byte>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  std::vector<Frame> frames = testing::SampleFrames();
  for (size_t i = 0; i < frames.size(); ++i) {
    MessageType type = TypeOf(frames[i].message);
    std::string name = std::to_string(i) + "_" + std::string(MessageTypeName(type));
    std::vector<std::byte> frame = EncodeFrame(frames[i]);
    std::vector<std::byte> body{static_cast<std::byte>(frames[i].message.index())};
    body.insert(body.end(), frame.begin() + kFrameHeaderSize, frame.end());
    if (!WriteFile(dir + "/frame_" + name, frame) || !WriteFile(dir + "/body_" + name, body)) {
      std::perror(dir.c_str());
      return 1;
    }
  }
  // One stream of several frames back to back, as a receiver sees them.
  std::vector<std::byte> stream;
  for (size_t i = 0; i < frames.size(); i += 5) EncodeFrame(frames[i], stream);
  if (!WriteFile(dir + "/stream_mixed", stream)) {
    std::perror(dir.c_str());
    return 1;
  }
  return 0;
}
