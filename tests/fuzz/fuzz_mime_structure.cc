// libFuzzer target: the message-structure parser (cmail/mail/structure.h). The input is a
// message. Invariants: two different splits into pieces (derived from the first octet) give
// the same tree; every header and body lies inside the message, the body right after the
// header; children lie inside their parent's body, in order; the stored form round trips. The
// input is also given to decode_structure (whatever it takes must round trip) and to the
// transfer decoders (the same output whole and in pieces, size() its length).
#include <cmail/mail/structure.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using namespace cmail::mail;

void check(bool ok) {
  if (!ok) std::abort();
}

Part parse_split(std::string_view in, std::size_t step, StructureLimits limits) {
  StructureParser p(limits);
  for (std::size_t at = 0; at < in.size(); at += step) p.feed(in.substr(at, step));
  return p.finish();
}

void check_part(const Part& p, std::uint64_t size, int depth) {
  check(p.header_offset + p.header_length == p.body_offset);
  check(p.body_offset <= size && p.body_length <= size - p.body_offset);
  check(p.body_lines <= p.body_length);
  check(depth <= 101);
  std::uint64_t at = p.body_offset, end = p.body_offset + p.body_length;
  for (const Part& c : p.children) {
    check(c.header_offset >= at);
    check(c.body_offset + c.body_length <= end);
    at = c.body_offset + c.body_length;
    check_part(c, size, depth + 1);
  }
  if (p.is_message() && !p.children.empty()) check(p.children.size() == 1 && p.children[0].envelope.has_value());
}

template <typename Decoder>
void check_decoder(std::string_view in, std::size_t step) {
  Decoder whole, split;
  std::string a, b;
  whole.feed(in, a);
  whole.finish(a);
  for (std::size_t at = 0; at < in.size(); at += step) split.feed(in.substr(at, step), b);
  split.finish(b);
  check(a == b && whole.size() == a.size() && split.size() == b.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t step = size ? 1 + data[0] % 61 : 1;
  // Small limits too, so that the fuzzer reaches them with short inputs.
  StructureLimits small{.max_header = 64, .max_depth = 3, .max_parts = 8};
  for (const StructureLimits& limits : {StructureLimits{}, small}) {
    Part whole = parse_split(in, in.size() + 1, limits);
    check(parse_split(in, step, limits) == whole);
    check(parse_split(in, 1 + step / 7, limits) == whole);
    check_part(whole, size, 0);
    auto back = decode_structure(encode_structure(whole));
    check(back.has_value() && *back == whole);
  }
  if (auto stored = decode_structure(in)) {
    auto again = decode_structure(encode_structure(*stored));
    check(again.has_value() && *again == *stored);
  }
  check_decoder<Base64Decoder>(in, step);
  check_decoder<QuotedPrintableDecoder>(in, step);
  (void)decode_encoded_words(in);
  (void)parse_address_list(in);
  return 0;
}
