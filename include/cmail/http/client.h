// cmail/http/client.h: one HTTP/1.1 GET as a sans-I/O client engine.
//
// The engine verbs of cmail/proto/transport.h on the engine kernel (cmail/proto/conversation.h):
// it writes one request ("GET target HTTP/1.1", Host, Connection: close, no redirects followed),
// reads the response with the shared ResponseParser (cmail/http/message.h) and its limits, and
// closes when the response is complete, broken, or the wait for it timed out. Redirects are not
// followed: a 3xx is a result like any other, for the caller to refuse (RFC 8461 3.3).
// The runtime drives it over TLS (cmail/net/mta_sts.h); tests feed it bytes.
//
// Thread-safety: none; one Client per connection.
#pragma once

#include <cmail/export.h>
#include <cmail/http/message.h>
#include <cmail/proto/conversation.h>
#include <cmail/proto/transport.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace cmail::http {

struct ClientOptions {
  std::string host;          // the Host field (RFC 9110 7.2)
  std::string target = "/";  // origin-form (RFC 9112 3.2.1)
  std::vector<Field> fields = {{"User-Agent", "cmail"}};  // sent after Host and Connection
  HttpLimits limits;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};  // of silence
};

// What became of the request: a complete response, or why there is none.
struct Response {
  bool ok = false;  // a complete response was read
  StatusLine status;
  std::vector<Field> fields;
  std::string body;
  std::string error;  // when !ok
};

class CMAIL_EXPORT Client : public proto::Conversation {
 public:
  explicit Client(ClientOptions options);

  void receive(std::string_view bytes);
  void receive_eof();
  void tls_established(const proto::TlsInfo&) {}
  void timed_out();
  bool wants_read() const { return !finished_ && reading(); }
  std::chrono::milliseconds timeout() const { return options_.timeout; }

  // The response once finished() (complete or failed).
  bool finished() const { return finished_; }
  const Response& response() const { return response_; }

 private:
  void finish();
  ClientOptions options_;
  ResponseParser parser_;
  Response response_;
  bool finished_ = false;
};

}  // namespace cmail::http
