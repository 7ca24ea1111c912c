#include "engine/arbiter/etcd_client.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>

namespace hasync::engine::arbiter {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// Bodies of the calls above are small; anything larger is not etcd answering them.
constexpr size_t kMaxBodyBytes = 1 << 20;

// The gateway writes int64 fields as JSON strings (proto3's JSON mapping) and leaves out
// fields at their zero value; accept a number too.
Result<int64_t> Int64Field(const Json& obj, std::string_view name) {
  auto it = obj.find(std::string(name));
  if (it == obj.end() || it->is_null()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || end != s.c_str() + s.size() || errno != 0) {
      return InvalidArgument(fmt::format("etcd: field {} = \"{}\" is not an integer", name, s));
    }
    return static_cast<int64_t>(v);
  }
  return InvalidArgument(fmt::format("etcd: field {} is not an integer", name));
}

Result<Json> ParseObject(std::string_view body) {
  if (body.size() > kMaxBodyBytes) {
    return InvalidArgument(fmt::format("etcd: answer of {} bytes is too large", body.size()));
  }
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument("etcd: answer is not a JSON object: " + ErrorText(body));
  }
  if (j.contains("error")) {
    return Unavailable("etcd: " + ErrorText(body));
  }
  return j;
}

Result<std::optional<KeyValue>> ParseKv(const Json& kvs) {
  if (!kvs.is_array() || kvs.empty()) return std::optional<KeyValue>{};
  const Json& o = kvs.front();
  if (!o.is_object()) return InvalidArgument("etcd: kvs[0] is not an object");
  KeyValue kv;
  ASSIGN_OR_RETURN(kv.key, Base64Decode(o.value("key", "")));
  ASSIGN_OR_RETURN(kv.value, Base64Decode(o.value("value", "")));
  ASSIGN_OR_RETURN(kv.create_revision, Int64Field(o, "create_revision"));
  ASSIGN_OR_RETURN(kv.mod_revision, Int64Field(o, "mod_revision"));
  ASSIGN_OR_RETURN(kv.version, Int64Field(o, "version"));
  ASSIGN_OR_RETURN(kv.lease, Int64Field(o, "lease"));
  return std::optional<KeyValue>(std::move(kv));
}

Result<int64_t> HeaderRevision(const Json& j) {
  auto it = j.find("header");
  if (it == j.end() || !it->is_object()) return int64_t{0};
  return Int64Field(*it, "revision");
}

Json OpJson(const TxnOp& op) {
  switch (op.kind) {
    case TxnOp::Kind::kPut: {
      Json put = {{"key", Base64Encode(op.key)}, {"value", Base64Encode(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return Json{{"request_put", put}};
    }
    case TxnOp::Kind::kRange:
      return Json{{"request_range", {{"key", Base64Encode(op.key)}}}};
    case TxnOp::Kind::kDelete:
      return Json{{"request_delete_range", {{"key", Base64Encode(op.key)}}}};
  }
  return Json::object();
}

}  // namespace

// ---- base64 ----------------------------------------------------------------------------------

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(in[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8) |
                       uint32_t{static_cast<uint8_t>(in[i + 2])};
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(in[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) {
    return InvalidArgument(
        fmt::format("etcd: base64 of {} characters (not a multiple of 4)", in.size()));
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = in[i + k];
      uint32_t d = 0;
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
      } else {
        const size_t pos = kB64.find(c);
        if (pos == std::string_view::npos || pad > 0) {
          return InvalidArgument(fmt::format("etcd: invalid base64 at offset {}", i + k));
        }
        d = static_cast<uint32_t>(pos);
      }
      v = (v << 6) | d;
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

// ---- encoders and parsers ---------------------------------------------------------------------

std::string ErrorText(std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    for (const char* field : {"message", "error"}) {
      auto it = j.find(field);
      if (it == j.end()) continue;
      if (it->is_string()) return it->get<std::string>();
      if (it->is_object() && it->contains("message") && (*it)["message"].is_string()) {
        return (*it)["message"].get<std::string>();
      }
    }
  }
  std::string out(body.substr(0, 200));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

std::string EncodeLeaseGrant(int64_t ttl_s) {
  return Json{{"TTL", std::to_string(ttl_s)}, {"ID", "0"}}.dump();
}

Result<Lease> ParseLeaseGrant(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  if (j.contains("error") && j["error"].is_string() && !j["error"].get<std::string>().empty()) {
    return Unavailable("etcd: lease grant: " + j["error"].get<std::string>());
  }
  Lease l;
  ASSIGN_OR_RETURN(l.id, Int64Field(j, "ID"));
  ASSIGN_OR_RETURN(l.ttl_s, Int64Field(j, "TTL"));
  if (l.id == 0 || l.ttl_s <= 0) {
    return InvalidArgument("etcd: lease grant answered without a lease: " + ErrorText(body));
  }
  return l;
}

std::string EncodeLeaseId(int64_t id) { return Json{{"ID", std::to_string(id)}}.dump(); }

Result<int64_t> ParseKeepAlive(std::string_view body) {
  // A stream: one JSON object per answer, separated by newlines; the first one counts.
  const size_t nl = body.find('\n');
  const std::string_view first = nl == std::string_view::npos ? body : body.substr(0, nl);
  ASSIGN_OR_RETURN(Json j, ParseObject(first));
  auto it = j.find("result");
  if (it == j.end() || !it->is_object()) {
    return InvalidArgument("etcd: keep-alive answered without a result: " + ErrorText(first));
  }
  ASSIGN_OR_RETURN(int64_t ttl, Int64Field(*it, "TTL"));
  if (ttl <= 0) return Status(Code::kNotFound, "etcd: the lease is gone (expired or revoked)");
  return ttl;
}

Result<int64_t> ParseTimeToLive(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  ASSIGN_OR_RETURN(int64_t ttl, Int64Field(j, "TTL"));
  if (ttl <= 0) return Status(Code::kNotFound, "etcd: the lease is gone (expired or revoked)");
  return ttl;
}

std::string EncodeRange(std::string_view key) { return Json{{"key", Base64Encode(key)}}.dump(); }

Result<RangeResult> ParseRange(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  RangeResult r;
  ASSIGN_OR_RETURN(r.revision, HeaderRevision(j));
  if (j.contains("kvs")) {
    ASSIGN_OR_RETURN(r.kv, ParseKv(j["kvs"]));
  }
  return r;
}

std::string EncodePut(std::string_view key, std::string_view value, int64_t lease) {
  Json j = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) j["lease"] = std::to_string(lease);
  return j.dump();
}

std::string EncodeTxn(const Txn& txn) {
  Json compare = Json::array();
  for (const Compare& c : txn.compare) {
    Json o = {{"key", Base64Encode(c.key)}};
    switch (c.op) {
      case Compare::Op::kEqual:
        o["result"] = "EQUAL";
        break;
      case Compare::Op::kNotEqual:
        o["result"] = "NOT_EQUAL";
        break;
      case Compare::Op::kLess:
        o["result"] = "LESS";
        break;
      case Compare::Op::kGreater:
        o["result"] = "GREATER";
        break;
    }
    switch (c.target) {
      case Compare::Target::kCreateRevision:
        o["target"] = "CREATE";
        o["create_revision"] = std::to_string(c.revision);
        break;
      case Compare::Target::kModRevision:
        o["target"] = "MOD";
        o["mod_revision"] = std::to_string(c.revision);
        break;
      case Compare::Target::kValue:
        o["target"] = "VALUE";
        o["value"] = Base64Encode(c.value);
        break;
    }
    compare.push_back(std::move(o));
  }
  Json success = Json::array();
  for (const TxnOp& op : txn.success) success.push_back(OpJson(op));
  Json failure = Json::array();
  for (const TxnOp& op : txn.failure) failure.push_back(OpJson(op));
  return Json{{"compare", compare}, {"success", success}, {"failure", failure}}.dump();
}

Result<TxnResult> ParseTxn(std::string_view body, const Txn& txn) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  TxnResult r;
  ASSIGN_OR_RETURN(r.revision, HeaderRevision(j));
  auto s = j.find("succeeded");
  r.succeeded = s != j.end() && s->is_boolean() && s->get<bool>();
  const std::vector<TxnOp>& ops = r.succeeded ? txn.success : txn.failure;
  Json responses = j.value("responses", Json::array());
  if (!responses.is_array() || responses.size() != ops.size()) {
    return InvalidArgument(fmt::format("etcd: transaction answered {} responses for {} operations",
                                       responses.is_array() ? responses.size() : 0, ops.size()));
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind != TxnOp::Kind::kRange) {
      r.ranges.emplace_back();
      continue;
    }
    const Json& rr = responses[i];
    auto it = rr.find("response_range");
    if (it == rr.end() || !it->is_object()) {
      return InvalidArgument(fmt::format("etcd: transaction response {} is not a range", i));
    }
    std::optional<KeyValue> kv;
    if (it->contains("kvs")) {
      ASSIGN_OR_RETURN(kv, ParseKv((*it)["kvs"]));
    }
    r.ranges.push_back(std::move(kv));
  }
  return r;
}

std::string EncodeAuthenticate(std::string_view user, std::string_view password) {
  return Json{{"name", std::string(user)}, {"password", std::string(password)}}.dump();
}

Result<std::string> ParseAuthenticate(std::string_view body) {
  ASSIGN_OR_RETURN(Json j, ParseObject(body));
  auto it = j.find("token");
  if (it == j.end() || !it->is_string() || it->get<std::string>().empty()) {
    return PermissionDenied("etcd: authentication answered without a token");
  }
  return it->get<std::string>();
}

// ---- the client -------------------------------------------------------------------------------

struct EtcdClient::Impl {
  Config::Arbiter config;
  std::string password;
  std::string token;
  size_t current = 0;
  bool answered = false;
  // The deadline of the call under way: an authentication inside it shares it.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::vector<std::unique_ptr<httplib::Client>> clients;
  std::vector<EtcdClient::EndpointHealth> health;  // one per endpoint

  void Answered(size_t idx) {
    health[idx].state = EndpointHealth::State::kAnswered;
    health[idx].error.clear();
  }
  void Failed(size_t idx, std::string why) {
    health[idx].state = EndpointHealth::State::kFailed;
    health[idx].error = std::move(why);
  }
};

Result<std::unique_ptr<EtcdClient>> EtcdClient::Create(const Config::Arbiter& config,
                                                       std::string password) {
  if (config.endpoints.empty()) return InvalidArgument("etcd: no endpoints configured");
  if (!config.user.empty() && password.empty()) {
    return InvalidArgument("etcd: arbiter.user is set but the password is empty");
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(config, std::move(password)));
}

EtcdClient::EtcdClient(const Config::Arbiter& config, std::string password)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  impl_->password = std::move(password);
  for (const EtcdEndpoint& e : config.endpoints) {
    std::unique_ptr<httplib::Client> c;
    if (e.tls) {
      c = std::make_unique<httplib::Client>(fmt::format("https://{}", e.address.ToString()),
                                            config.cert_file, config.key_file);
      c->set_ca_cert_path(config.ca_file.c_str());
      c->enable_server_certificate_verification(true);
    } else {
      c = std::make_unique<httplib::Client>(e.address.host, e.address.port);
    }
    c->set_keep_alive(true);
    impl_->clients.push_back(std::move(c));
    impl_->health.push_back({e.ToString(), EndpointHealth::State::kUntried, ""});
  }
}

EtcdClient::~EtcdClient() = default;

std::string EtcdClient::current_endpoint() const {
  if (!impl_->answered) return "";
  return impl_->config.endpoints[impl_->current].ToString();
}

std::vector<EtcdClient::EndpointHealth> EtcdClient::endpoint_health() const {
  return impl_->health;
}

Result<std::string> EtcdClient::Call(std::string_view path, const std::string& body) {
  using Clock = std::chrono::steady_clock;
  const bool outer = !impl_->deadline.has_value();
  if (outer) {
    impl_->deadline = Clock::now() + std::chrono::milliseconds(impl_->config.request_timeout_ms);
  }
  const auto deadline = *impl_->deadline;
  struct Reset {
    Impl* impl;
    bool outer;
    ~Reset() {
      if (outer) impl->deadline.reset();
    }
  } reset{impl_.get(), outer};
  const size_t n = impl_->clients.size();
  std::vector<std::string> why;
  bool reauthenticated = false;
  // Each endpoint once, from the one that answered last; an authentication retry may add
  // one more try. Bounded by the deadline in any case.
  for (size_t tries = 0; tries < n + 1; ++tries) {
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) break;
    const size_t idx = impl_->current;
    const std::string name = impl_->config.endpoints[idx].ToString();
    if (!impl_->config.user.empty() && impl_->token.empty() && path != "/v3/auth/authenticate") {
      Status st = Authenticate();
      if (!st.ok()) {
        if (st.code() != Code::kUnavailable) return st;
        why.push_back(fmt::format("{}: {}", name, st.message()));
        impl_->Failed(idx, std::string(st.message()));
        impl_->current = (idx + 1) % n;
        continue;
      }
    }
    httplib::Client& c = *impl_->clients[idx];
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    const time_t sec = static_cast<time_t>(std::max<int64_t>(us.count(), 1000) / 1'000'000);
    const time_t usec = static_cast<time_t>(std::max<int64_t>(us.count(), 1000) % 1'000'000);
    c.set_connection_timeout(sec, usec);
    c.set_read_timeout(sec, usec);
    c.set_write_timeout(sec, usec);
    httplib::Headers headers;
    if (!impl_->token.empty() && path != "/v3/auth/authenticate") {
      headers.emplace("Authorization", impl_->token);
    }
    // Sent by hand rather than with Post: etcd's gateway ends an error answer with HTTP
    // trailers, which this cpp-httplib (0.11) cannot parse. Capturing the status and the
    // body as they arrive keeps etcd's reason even when the read then fails on them.
    httplib::Request req;
    req.method = "POST";
    req.path = std::string(path);
    req.headers = std::move(headers);
    req.headers.emplace("Content-Type", "application/json");
    req.body = body;
    int status = -1;
    std::string got;
    req.response_handler = [&status](const httplib::Response& r) {
      status = r.status;
      return true;
    };
    req.content_receiver = [&got](const char* data, size_t len, uint64_t, uint64_t) {
      if (got.size() + len > kMaxBodyBytes) return false;
      got.append(data, len);
      return true;
    };
    httplib::Response resp;
    httplib::Error error = httplib::Error::Success;
    const bool sent = c.send(req, resp, error);
    const bool trailer_only = !sent && error == httplib::Error::Read && status >= 400 &&
                              !got.empty() && got.back() == '}';
    if (!sent && !trailer_only) {
      why.push_back(fmt::format("{}: {}", name, httplib::to_string(error)));
      impl_->Failed(idx, httplib::to_string(error));
      c.stop();  // drop a half-used connection
      impl_->current = (idx + 1) % n;
      continue;
    }
    if (trailer_only) c.stop();  // the connection's state after the trailers is unknown
    if (status == 200) {
      impl_->answered = true;
      impl_->Answered(idx);
      return got;
    }
    const std::string text = ErrorText(got);
    // The gateway answers etcd's own refusals with the gRPC code in the body; anything
    // else (no code) is not etcd speaking: a proxy, a member starting, a wrong port.
    const Json err = Json::parse(got, nullptr, false);
    const int grpc = !err.is_discarded() && err.is_object() && err.contains("code") &&
                             err["code"].is_number_integer()
                         ? err["code"].get<int>()
                         : -1;
    if (grpc == 16 && !impl_->config.user.empty() && !reauthenticated &&
        path != "/v3/auth/authenticate") {
      // The token expired (etcd's simple tokens live for minutes): once more with a new one.
      impl_->token.clear();
      reauthenticated = true;
      continue;
    }
    // 14 Unavailable (no leader, a member stopping), 4 DeadlineExceeded (a request timed
    // out inside etcd), 10 Aborted: another member may do better.
    if (grpc == -1 || grpc == 14 || grpc == 4 || grpc == 10 || status >= 500) {
      why.push_back(fmt::format("{}: HTTP {}: {}", name, status, text));
      impl_->Failed(idx, fmt::format("HTTP {}: {}", status, text));
      impl_->current = (idx + 1) % n;
      continue;
    }
    impl_->answered = true;
    impl_->Answered(idx);
    const Code code = grpc == 5                 ? Code::kNotFound
                      : grpc == 7 || grpc == 16 ? Code::kPermissionDenied
                                                : Code::kFailedPrecondition;
    return Status(code, fmt::format("etcd {} {}: HTTP {}: {}", name, path, status, text));
  }
  std::string all;
  for (const std::string& w : why) all += (all.empty() ? "" : "; ") + w;
  return Unavailable(fmt::format("etcd {}: no member answered within {} ms ({})", path,
                                 impl_->config.request_timeout_ms,
                                 all.empty() ? "time ran out" : all));
}

Status EtcdClient::Authenticate() {
  // Through Call, so it fails over too; the path keeps Call from recursing.
  ASSIGN_OR_RETURN(std::string body, Call("/v3/auth/authenticate",
                                          EncodeAuthenticate(impl_->config.user, impl_->password)));
  ASSIGN_OR_RETURN(impl_->token, ParseAuthenticate(body));
  return Status::Ok();
}

Result<Lease> EtcdClient::Grant(int64_t ttl_s) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/grant", EncodeLeaseGrant(ttl_s)));
  return ParseLeaseGrant(body);
}

Result<int64_t> EtcdClient::KeepAlive(int64_t lease_id) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/keepalive", EncodeLeaseId(lease_id)));
  return ParseKeepAlive(body);
}

Result<int64_t> EtcdClient::TimeToLive(int64_t lease_id) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/timetolive", EncodeLeaseId(lease_id)));
  return ParseTimeToLive(body);
}

Status EtcdClient::Revoke(int64_t lease_id) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/revoke", EncodeLeaseId(lease_id)));
  return ParseObject(body).status();
}

Result<RangeResult> EtcdClient::Range(std::string_view key) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/range", EncodeRange(key)));
  return ParseRange(body);
}

Status EtcdClient::Put(std::string_view key, std::string_view value, int64_t lease) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/put", EncodePut(key, value, lease)));
  return ParseObject(body).status();
}

Result<TxnResult> EtcdClient::Txn(const struct Txn& txn) {
  ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/txn", EncodeTxn(txn)));
  return ParseTxn(body, txn);
}

}  // namespace hasync::engine::arbiter
