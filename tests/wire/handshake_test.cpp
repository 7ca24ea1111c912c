// The plain-mode MAC input: its exact layout, and that it binds the responder's side.
#include <gtest/gtest.h>

#include "tests/wire/samples.h"
#include "wire/handshake.h"

namespace hasync::wire {
namespace {

using ::hasync::wire::testing::Array;

TEST(PlainAuthInput, LayoutIsLabelNulSidePeerNonceOwnNonce) {
  Nonce peer = Array<kNonceSize>(1);
  Nonce own = Array<kNonceSize>(2);
  std::vector<std::byte> in = PlainAuthInput(AuthSide::kAcceptor, peer, own);
  ASSERT_EQ(in.size(), kPlainAuthLabel.size() + 2 + 2 * kNonceSize);
  std::string label(reinterpret_cast<const char*>(in.data()), kPlainAuthLabel.size());
  EXPECT_EQ(label, "hasync plain auth v1");
  EXPECT_EQ(in[kPlainAuthLabel.size()], std::byte{0});
  EXPECT_EQ(in[kPlainAuthLabel.size() + 1], std::byte{'A'});
  size_t at = kPlainAuthLabel.size() + 2;
  EXPECT_TRUE(std::equal(peer.begin(), peer.end(), in.begin() + static_cast<ptrdiff_t>(at)));
  EXPECT_TRUE(
      std::equal(own.begin(), own.end(), in.begin() + static_cast<ptrdiff_t>(at + kNonceSize)));
}

TEST(PlainAuthInput, ReflectedResponseDoesNotMatch) {
  // A connector answering the acceptor's nonce with the acceptor's own inputs must
  // produce different bytes, or a MITM could bounce a RESPONSE back to its author.
  Nonce a = Array<kNonceSize>(1);
  Nonce c = Array<kNonceSize>(2);
  EXPECT_NE(PlainAuthInput(AuthSide::kAcceptor, c, a), PlainAuthInput(AuthSide::kConnector, c, a));
  EXPECT_NE(PlainAuthInput(AuthSide::kAcceptor, c, a), PlainAuthInput(AuthSide::kAcceptor, a, c));
}

}  // namespace
}  // namespace hasync::wire
