// The engines' input buffer: line mode and exact mode. See cmail/proto/line_reader.h.
#include <cmail/proto/line_reader.h>

namespace cmail::proto {

void LineReader::append(std::string_view bytes) {
  compact();
  buf_.append(bytes);
}

void LineReader::compact() {
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ >= 4096 && pos_ * 2 >= buf_.size()) {
    // Erase the consumed front only now and then, not once per line (pipelined input).
    buf_.erase(0, pos_);
    pos_ = 0;
  }
}

LineReader::Result LineReader::next_line(std::size_t limit, std::string_view& line) {
  for (;;) {
    std::string_view p = pending();
    std::size_t lf = p.find('\n', scanned_);
    if (lf != std::string_view::npos && end_ == LineEnd::CrLf && (lf == 0 || p[lf - 1] != '\r')) {
      scanned_ = lf + 1;  // a bare LF inside the line
      continue;
    }
    if (lf == std::string_view::npos) {
      scanned_ = p.size();
      if (!discarding_ && p.size() <= limit) return Result::NeedMore;
      // The rest of an over-long line is dropped as it arrives, but a final CR stays: it may
      // be the start of the CRLF that ends the line.
      const bool reported = discarding_;
      discarding_ = true;
      consume(p.size() - (p.back() == '\r' ? 1 : 0));
      return reported ? Result::NeedMore : Result::TooLong;
    }
    std::size_t end = lf > 0 && p[lf - 1] == '\r' ? lf - 1 : lf;
    std::string_view text = p.substr(0, end);
    consume(lf + 1);
    if (discarding_) {
      discarding_ = false;  // that was the end of the line already reported
      continue;
    }
    if (text.size() + 2 > limit) return Result::TooLong;
    line = text;
    return Result::Line;
  }
}

std::string_view LineReader::peek(std::size_t max) const { return pending().substr(0, max); }

void LineReader::consume(std::size_t n) {
  if (n > size()) n = size();
  pos_ += n;
  scanned_ = scanned_ > n ? scanned_ - n : 0;
}

std::string LineReader::take_all() {
  std::string rest(pending());
  clear();
  return rest;
}

void LineReader::clear() {
  buf_.clear();
  pos_ = 0;
  scanned_ = 0;
  discarding_ = false;
}

}  // namespace cmail::proto
