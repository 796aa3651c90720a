// cmail/proto/line_reader.h: the input side of every protocol engine.
//
// A LineReader buffers the bytes an engine receives, in any split, and hands them out again in
// one of two modes:
//   - line mode, next_line(): one complete line at a time, without its line end. A line ends
//     at CRLF, or also at a bare LF where the protocol's reader accepts it (LineEnd). A line
//     longer than the caller's limit is reported once as TooLong and then discarded up to its
//     end, so that no line ever grows the buffer beyond the limit (RFC 5321 4.5.3.1.4,
//     RFC 2449 4, RFC 9051 4);
//   - exact mode, peek() and consume(): the next N octets whatever they hold (BDAT chunks,
//     RFC 3030 2; IMAP literals, RFC 9051 4.3).
// Input the engine cannot take yet (a verdict is pending) stays buffered; full() tells the
// engine to stop asking for more (wants_read() false), which bounds the buffer by the limit
// plus one read.
//
// Thread-safety: none; owned by one engine. Views returned by next_line() and peek() stay valid
// until the next non-const call.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cmail::proto {

enum class LineEnd {
  CrLf,      // only CRLF ends a line; a bare LF is part of it
  CrLfOrLf,  // CRLF or a bare LF (commands and replies, as most servers accept them)
};

class CMAIL_EXPORT LineReader {
 public:
  static constexpr std::size_t kDefaultMaxBuffered = 64 * 1024;

  explicit LineReader(LineEnd end = LineEnd::CrLfOrLf, std::size_t max_buffered = kDefaultMaxBuffered)
      : end_(end), max_buffered_(max_buffered) {}

  // Adds received bytes.
  void append(std::string_view bytes);

  enum class Result {
    Line,      // `line` holds the next line, consumed from the buffer
    NeedMore,  // no complete line yet
    TooLong,   // the line exceeds `limit`; it is (being) discarded, reported once per line
  };
  // Line mode. `limit` counts the line end (CRLF: 2 octets). After TooLong, the reader drops
  // the rest of that line as it arrives and the next call starts at the following line.
  Result next_line(std::size_t limit, std::string_view& line);

  // Exact mode: up to `max` of the next octets, and consuming them.
  std::string_view peek(std::size_t max) const;
  void consume(std::size_t n);

  // Everything buffered and not yet consumed (for header checks before a line is complete).
  std::string_view pending() const { return std::string_view(buf_).substr(pos_); }
  std::size_t size() const { return buf_.size() - pos_; }
  bool empty() const { return size() == 0; }
  // Part of a line has arrived: bytes are buffered, or an over-long line is being discarded.
  bool mid_line() const { return !empty() || discarding_; }
  // More is buffered than the engine should hold while it cannot parse.
  bool full() const { return size() >= max_buffered_; }
  // Takes every unconsumed byte out (the bytes after STARTTLS belong to the TLS handshake).
  std::string take_all();
  // Forgets everything buffered, and a line being discarded.
  void clear();

 private:
  void compact();

  LineEnd end_;
  std::size_t max_buffered_;
  std::string buf_;
  std::size_t pos_ = 0;       // consumed octets at the front of buf_
  std::size_t scanned_ = 0;   // octets after pos_ known to hold no LF
  bool discarding_ = false;   // inside an over-long line
};

}  // namespace cmail::proto
