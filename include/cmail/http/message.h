// cmail/http/message.h: the HTTP/1.1 message syntax (RFC 9112), one parser for every engine.
//
// The pieces an HTTP engine needs, server or client, as sans-I/O code with limits:
//   parse_status_line()   "HTTP/1.1 200 OK" (RFC 9112 4)
//   parse_request_line()  "GET /path HTTP/1.1" (RFC 9112 3)
//   parse_field_line()    "Name: value" (RFC 9112 5, field names are tokens, RFC 9110 5.1)
//   HeadParser            a start line and its field section from bytes in any split: lines end
//                         at CRLF or a bare LF (RFC 9112 2.2), obs-fold is replaced by SP
//                         (RFC 9112 5.2), limits on line length, field count and the whole head
//   ResponseParser        a whole response: interim 1xx responses skipped (RFC 9110 15.2), the
//                         body framed by chunked, Content-Length or the end of the connection
//                         (RFC 9112 6.3), chunked decoded (RFC 9112 7.1), the body limited
//   format_request()      a request head to send
// A later HTTP server engine parses requests with the same HeadParser and field parsers.
//
// Nothing here allocates without a limit: every buffer is bounded by HttpLimits, and input past a
// limit is an error, never a larger buffer.
//
// Thread-safety: value types; one parser per message stream.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::http {

struct Field {
  std::string name;   // as received (compare with iequals)
  std::string value;  // without leading and trailing whitespace (RFC 9112 5.1)
  bool operator==(const Field&) const = default;
};

struct StatusLine {
  int major = 1, minor = 1;  // HTTP-version
  int code = 0;              // 100-999 (RFC 9110 15: three digits)
  std::string reason;
  bool operator==(const StatusLine&) const = default;
};

struct RequestLine {
  std::string method;  // a token (RFC 9110 9.1), case-sensitive
  std::string target;  // as received (RFC 9112 3.2)
  int major = 1, minor = 1;
  bool operator==(const RequestLine&) const = default;
};

struct HttpLimits {
  std::size_t max_line = 8192;            // a start line or field line, line end included
  std::size_t max_fields = 100;           // per field section (head or trailers)
  std::size_t max_head = 64 * 1024;       // a whole head, start line and fields
  std::uint64_t max_body = 64 * 1024;     // the decoded body
  std::size_t max_interim = 10;           // 1xx responses before the final one
};

// RFC 9110 5.6.2: token = 1*tchar.
CMAIL_EXPORT bool is_token(std::string_view s);
// ASCII case-insensitive equality (field names, RFC 9110 5.1; media types, RFC 9110 8.3.1).
CMAIL_EXPORT bool iequals(std::string_view a, std::string_view b);

// RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. A missing SP
// before an empty reason is accepted, as most clients do.
CMAIL_EXPORT std::optional<StatusLine> parse_status_line(std::string_view line);
// RFC 9112 3: request-line = method SP request-target SP HTTP-version.
CMAIL_EXPORT std::optional<RequestLine> parse_request_line(std::string_view line);
// RFC 9112 5: field-line = field-name ":" OWS field-value OWS. No whitespace may stand between
// the name and the colon (RFC 9112 5.1: rejected); the value holds no CR, LF or NUL
// (RFC 9110 5.5).
CMAIL_EXPORT std::optional<Field> parse_field_line(std::string_view line);

// The first field named `name` (case-insensitive), or nullptr.
CMAIL_EXPORT const Field* find_field(const std::vector<Field>& fields, std::string_view name);
// The media type of a Content-Type value, lower-cased, without parameters ("text/plain").
CMAIL_EXPORT std::string media_type(std::string_view content_type);

// A start line and its field section, fed in any split.
class CMAIL_EXPORT HeadParser {
 public:
  enum class State { Reading, Done, Error };
  explicit HeadParser(const HttpLimits& limits = {}) : limits_(limits) {}
  // Takes bytes until the head is complete; returns how many of `bytes` it took (the rest is
  // the body, or the next message). Once Done or Error it takes nothing.
  std::size_t feed(std::string_view bytes);
  State state() const { return state_; }
  const std::string& start_line() const { return start_; }
  const std::vector<Field>& fields() const { return fields_; }
  const std::string& error() const { return error_; }
  // Reads a trailer section (RFC 9112 7.1.2): field lines only, no start line.
  void expect_no_start_line() { have_start_ = true; }
  // Some of a head was received (a start line, or part of one).
  bool started() const { return have_start_ || !partial_.empty(); }
  void reset();

 private:
  bool line(std::string_view l);  // false: stop (done or error)
  void fail(std::string why);
  HttpLimits limits_;
  State state_ = State::Reading;
  std::string partial_;  // the line being received
  std::string start_;
  std::vector<Field> fields_;
  std::size_t head_bytes_ = 0;
  bool have_start_ = false;
  std::string error_;
};

// One response, fed in any split.
class CMAIL_EXPORT ResponseParser {
 public:
  enum class State { Head, Body, Done, Error };
  explicit ResponseParser(const HttpLimits& limits = {}, bool head_request = false)
      : limits_(limits), head_request_(head_request), head_(limits) {}
  void feed(std::string_view bytes);
  // The connection ended: completes a body read until the end, else an error if incomplete.
  void eof();
  State state() const { return state_; }
  bool done() const { return state_ == State::Done; }
  const StatusLine& status() const { return status_; }
  const std::vector<Field>& fields() const { return fields_; }
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  enum class Framing { None, Length, Chunked, UntilClose };
  enum class Chunk { Size, Data, DataEnd, Trailers };
  void start_body();
  void body_bytes(std::string_view& in);
  void chunked(std::string_view& in);
  bool append(std::string_view b);
  void fail(std::string why);
  HttpLimits limits_;
  bool head_request_ = false;
  State state_ = State::Head;
  HeadParser head_;
  StatusLine status_;
  std::vector<Field> fields_;
  std::size_t interim_ = 0;
  Framing framing_ = Framing::None;
  std::uint64_t remaining_ = 0;  // Length: octets left; Chunked Data: of this chunk
  Chunk chunk_ = Chunk::Size;
  std::string line_;             // a chunk-size line or a chunk's CRLF being received
  std::string body_;
  std::string error_;
};

// A request head: "METHOD target HTTP/1.1", the fields in order, the empty line.
CMAIL_EXPORT std::string format_request(std::string_view method, std::string_view target,
                                        const std::vector<Field>& fields);

}  // namespace cmail::http
