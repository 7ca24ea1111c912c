// Plain-mode (transport = "plain") mutual authentication with the sync key.
//
// Contract: wire defines what is MACed, not how: the caller computes
// HMAC-SHA256(sync key, PlainAuthInput(...)) with mbedTLS and carries it in RESPONSE.
// Sequence (docs/PROTOCOL.md §5): on connect each side sends CHALLENGE with a fresh
// random nonce; on receiving the peer's CHALLENGE each side answers RESPONSE with the MAC
// over (its side, the peer's nonce, its own nonce); each checks the peer's RESPONSE in
// constant time before it parses anything else. The side letter stops a reflected
// RESPONSE from verifying, and both nonces stop replays from an earlier connection.
#pragma once

#include <cstddef>
#include <vector>

#include "wire/messages.h"

namespace hasync::wire {

enum class AuthSide : uint8_t { kConnector = 'C', kAcceptor = 'A' };

// The domain label that starts every MAC input, so the key's MACs for this purpose can
// never be confused with any other use of it.
inline constexpr std::string_view kPlainAuthLabel = "hasync plain auth v1";

// label || 0x00 || side || peer_nonce || own_nonce, where `side` is the responder's
// (the one computing the MAC) and peer_nonce is the CHALLENGE it answers.
std::vector<std::byte> PlainAuthInput(AuthSide side, const Nonce& peer_nonce,
                                      const Nonce& own_nonce);

}  // namespace hasync::wire
