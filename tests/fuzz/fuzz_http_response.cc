// libFuzzer target: the HTTP/1.1 response parser (cmail/http/message.h). Byte 0 chooses the
// limits, byte 1 the piece size; the rest is what a server sends. Invariants: parsing in pieces
// gives what parsing whole gives (state, status, fields, body, error); a complete response's
// body is within max_body and its status in 100..599; the fields within max_fields; the
// client engine (cmail/http/client.h) over the same bytes finishes with the same body.
#include <cmail/http/client.h>
#include <cmail/http/message.h>

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace cmail::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  HttpLimits limits;
  limits.max_line = 16 + (data[0] & 0x3f) * 8;
  limits.max_fields = 1 + (data[0] >> 6) * 4;
  limits.max_body = (data[0] & 1) ? 64 : 64 * 1024;
  const std::size_t piece = 1 + data[1] % 23;
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  ResponseParser whole(limits), split(limits);
  whole.feed(in);
  for (std::size_t i = 0; i < in.size(); i += piece) split.feed(in.substr(i, piece));
  whole.eof();
  split.eof();
  if (whole.state() != split.state() || whole.error() != split.error()) std::abort();
  if (whole.done()) {
    if (!(whole.status() == split.status()) || whole.fields() != split.fields() || whole.body() != split.body()) std::abort();
    if (whole.body().size() > limits.max_body) std::abort();
    if (whole.status().code < 100 || whole.status().code > 599) std::abort();
    if (whole.fields().size() > limits.max_fields) std::abort();
  }
  ClientOptions o;
  o.host = "h";
  o.limits = limits;
  Client c(o);
  for (std::size_t i = 0; i < in.size() && !c.finished(); i += piece) c.receive(in.substr(i, piece));
  c.receive_eof();
  if (!c.finished()) std::abort();
  if (c.response().ok && c.response().body.size() > limits.max_body) std::abort();
  return 0;
}
