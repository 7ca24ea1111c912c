// An etcd v3 client over etcd's JSON gateway (HTTP/1.1 + JSON, etcd 3.4: paths under
// /v3/, keys and values base64): what the arbiter needs and nothing more — lease grant,
// keep-alive, time-to-live and revoke, range, put, and transactions whose comparisons are
// a key's create_revision, mod_revision or value (docs/FAILOVER.md "The arbiter").
//
// Contract:
// - Every call is bounded by the configured request timeout in total, over every endpoint
//   it tries: an endpoint that does not connect, times out, answers 5xx or says it has no
//   leader is left for the next one in the list (round robin from the last that answered);
//   the call fails with kUnavailable naming each endpoint's reason when all fail or the
//   time is up. A request etcd refuses (a 4xx with a gRPC error) is not retried elsewhere:
//   it fails with that error (kNotFound for a lease etcd does not know).
// - With a user, the client authenticates (/v3/auth/authenticate) before its first call
//   and again once when etcd says the token is invalid.
// - The encoders and parsers are free functions so their wire format is tested without
//   etcd; EtcdClient only adds the transport.
// - TLS writes to a member that reset the connection raise SIGPIPE: the process must
//   ignore it (`hasync run` does).
// - Thread safety: none; one owner (the arbiter's thread) calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/config.h"

namespace hasync::engine::arbiter {

std::string Base64Encode(std::string_view in);
// Standard alphabet with padding (what the gateway writes); anything else is an error.
Result<std::string> Base64Decode(std::string_view in);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  // 0: none
};

struct Lease {
  int64_t id = 0;
  int64_t ttl_s = 0;  // as granted (etcd raises a TTL below its minimum)
};

// One comparison of a transaction.
struct Compare {
  enum class Target { kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kCreateRevision;
  Op op = Op::kEqual;
  int64_t revision = 0;  // kCreateRevision, kModRevision
  std::string value;     // kValue
};
// One operation of a transaction's branch.
struct TxnOp {
  enum class Kind { kPut, kRange, kDelete };
  Kind kind = Kind::kRange;
  std::string key;
  std::string value;  // kPut
  int64_t lease = 0;  // kPut
};
struct Txn {
  std::vector<Compare> compare;
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};
struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the transaction
  // One per operation of the branch taken; a range gives its key (or none), others none.
  std::vector<std::optional<KeyValue>> ranges;
};
struct RangeResult {
  int64_t revision = 0;
  std::optional<KeyValue> kv;
};

// ---- the wire format ------------------------------------------------------------------------

std::string EncodeLeaseGrant(int64_t ttl_s);
Result<Lease> ParseLeaseGrant(std::string_view body);
std::string EncodeLeaseId(int64_t id);  // keep-alive, time-to-live, revoke
// The TTL left after a keep-alive (its body is a stream of {"result": …} objects; the
// first counts). A lease etcd no longer holds gives kNotFound.
Result<int64_t> ParseKeepAlive(std::string_view body);
// The seconds the lease has left; kNotFound when etcd no longer holds it.
Result<int64_t> ParseTimeToLive(std::string_view body);
std::string EncodeRange(std::string_view key);
Result<RangeResult> ParseRange(std::string_view body);
std::string EncodePut(std::string_view key, std::string_view value, int64_t lease);
std::string EncodeTxn(const Txn& txn);
Result<TxnResult> ParseTxn(std::string_view body, const Txn& txn);
std::string EncodeAuthenticate(std::string_view user, std::string_view password);
Result<std::string> ParseAuthenticate(std::string_view body);
// The message of a gateway error body ({"error": …, "code": n, "message": …}), or the
// body itself cut to 200 bytes.
std::string ErrorText(std::string_view body);

// ---- the client ----------------------------------------------------------------------------

class EtcdClient {
 public:
  // `password` is the first line of arbiter.password_file (empty without a user).
  static Result<std::unique_ptr<EtcdClient>> Create(const Config::Arbiter& config,
                                                    std::string password);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  Result<Lease> Grant(int64_t ttl_s);
  // Renews the lease; returns the TTL etcd set.
  Result<int64_t> KeepAlive(int64_t lease_id);
  Result<int64_t> TimeToLive(int64_t lease_id);
  Status Revoke(int64_t lease_id);
  Result<RangeResult> Range(std::string_view key);
  Status Put(std::string_view key, std::string_view value, int64_t lease = 0);
  Result<TxnResult> Txn(const struct Txn& txn);

  // The endpoint the last successful call went to ("http://h:p"; empty before one).
  std::string current_endpoint() const;
  // What the client last saw of each configured endpoint, in the configured order: an
  // endpoint answers (etcd spoke, even to refuse), fails (the reason), or was not tried.
  struct EndpointHealth {
    std::string endpoint;
    enum class State { kUntried, kAnswered, kFailed } state = State::kUntried;
    std::string error;  // kFailed
  };
  std::vector<EndpointHealth> endpoint_health() const;

 private:
  explicit EtcdClient(const Config::Arbiter& config, std::string password);
  // POSTs `body` to `path`; the response body of a 200.
  Result<std::string> Call(std::string_view path, const std::string& body);
  Status Authenticate();

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hasync::engine::arbiter
