// The fuzz input convention shared by the fuzz target and its seed-corpus generator.
//
// Each input is decoded two ways:
//   1. as a byte stream of frames (DecodeNext repeatedly, and FrameDecoder fed in two
//      pieces), which exercises header validation and framing;
//   2. as "type selector byte + body": the body is handed straight to DecodeBody for the
//      message type kTypes[input[0] % kTypeCount], so the body parsers are reached
//      without the fuzzer first having to forge a valid header.
#pragma once

#include <array>
#include <cstddef>
#include <utility>
#include <variant>

#include "wire/messages.h"

namespace hasync::wire::fuzz {

inline constexpr size_t kTypeCount = std::variant_size_v<Message>;

inline constexpr std::array<MessageType, kTypeCount> kTypes =
    []<size_t... I>(std::index_sequence<I...>) {
  return std::array<MessageType, kTypeCount>{std::variant_alternative_t<I, Message>::kType...};
}
(std::make_index_sequence<kTypeCount>{});

}  // namespace hasync::wire::fuzz
