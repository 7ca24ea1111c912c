// MAC input for plain-mode authentication (see wire/handshake.h).
#include "wire/handshake.h"

namespace hasync::wire {

std::vector<std::byte> PlainAuthInput(AuthSide side, const Nonce& peer_nonce,
                                      const Nonce& own_nonce) {
  std::vector<std::byte> out;
  out.reserve(kPlainAuthLabel.size() + 2 + 2 * kNonceSize);
  for (char c : kPlainAuthLabel) out.push_back(static_cast<std::byte>(c));
  out.push_back(std::byte{0});
  out.push_back(static_cast<std::byte>(side));
  out.insert(out.end(), peer_nonce.begin(), peer_nonce.end());
  out.insert(out.end(), own_nonce.begin(), own_nonce.end());
  return out;
}

}  // namespace hasync::wire
