// libFuzzer target: the SMTP reply parser (client side), one line per input line.
// Invariant: a parsed reply formats back to lines that parse to the same reply.
#include <cmail/smtp/syntax.h>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  cmail::smtp::ReplyParser p;
  std::size_t pos = 0;
  while (pos < in.size()) {
    std::size_t nl = in.find('\n', pos);
    if (nl == std::string_view::npos) nl = in.size();
    auto r = p.feed(in.substr(pos, nl - pos));
    pos = nl + 1;
    if (!r || !r->has_value()) continue;
    const cmail::smtp::Reply& reply = **r;
    if (reply.code < 200 || reply.code > 599) std::abort();
    std::string text = reply.format();
    cmail::smtp::ReplyParser q;
    std::size_t k = 0;
    std::optional<cmail::smtp::Reply> back;
    while (k < text.size()) {
      std::size_t e = text.find("\r\n", k);
      auto step = q.feed(std::string_view(text).substr(k, e - k));
      if (!step) break;  // text lines with CR/LF inside do not round-trip; fine
      if (step->has_value()) back = **step;
      k = e + 2;
    }
    if (back && back->code != reply.code) std::abort();
  }
  return 0;
}
