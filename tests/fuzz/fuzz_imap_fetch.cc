// libFuzzer target: the FETCH items (cmail/imap/fetch.h). The input is a line of FETCH
// arguments (up to the first LF; literals are not part of FETCH), then a message. Invariants:
// parse_fetch() gives a request or a BAD text, never both or nothing; every item's response
// name parses back (as a fetch-att) to the same item without PEEK and with the partial's size
// dropped; every section's octet range lies inside the message; every content item is a
// literal of exactly the octets it announces; BINARY.SIZE is the length of BINARY's content;
// filter_header ends with a line end and keeps no more than the block.
#include <cmail/imap/fetch.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using namespace cmail;
using namespace cmail::imap;

void check_at(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_imap_fetch.cc:%d: check failed\n", line);
  std::abort();
}
#define check(ok) check_at((ok), __LINE__)

// From `at`: "{N}\r\n" or "~{N}\r\n", then exactly N octets.
void check_literal(const std::string& text, std::size_t at) {
  if (at < text.size() && text[at] == '~') ++at;
  check(at < text.size() && text[at] == '{');
  std::size_t open = at;
  std::size_t close = text.find("}\r\n", open);
  check(close != std::string::npos);
  std::uint64_t n = std::stoull(text.substr(open + 1, close - open - 1));
  check(text.size() - (close + 3) == n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  std::string_view message = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  mail::Part root = mail::parse_structure(message);
  MessageData m;
  m.structure = &root;
  m.octets = message;
  m.uid = 7;
  m.flags = {"\\Seen"};
  m.internal_date = static_cast<std::int64_t>(size) * 86400;
  m.modseq = size;

  auto parsed = parse_values(line);
  auto* values = std::get_if<std::vector<Value>>(&parsed);
  if (!values) return 0;
  auto request = parse_fetch(*values);
  if (auto* bad = std::get_if<std::string>(&request)) {
    check(!bad->empty());
    return 0;
  }
  const FetchRequest& req = std::get<FetchRequest>(request);
  check(!req.items.empty());
  check(!req.vanished || req.changed_since);
  for (const FetchItem& item : req.items) {
    std::string name = response_name(item);
    // The response form of a partial is "<origin>", which is no fetch-att: without it, the
    // name parses back to the item without PEEK (field names upper-cased).
    FetchItem whole = item;
    whole.partial.reset();
    whole.peek = false;
    std::string base = response_name(whole);
    check(item.partial ? name == base + '<' + std::to_string(item.partial->origin) + '>' : name == base);
    auto again = parse_fetch_att(base);
    check(again.has_value());
    check(again->kind == whole.kind && !again->peek && !again->partial && again->section.part == whole.section.part &&
          again->section.text == whole.section.text && again->section.fields.size() == whole.section.fields.size());

    if (auto range = locate_section(root, item.section))
      check(range->offset <= message.size() && range->length <= message.size() - range->offset);
    auto text = encode_message_item(item, m, size % 2 == 0);
    using K = FetchItem::Kind;
    if (std::holds_alternative<UnknownCte>(text)) {
      check(item.kind == K::Binary || item.kind == K::BinarySize);
      continue;
    }
    const std::string& s = std::get<std::string>(text);
    check(s.size() > name.size() && s.compare(0, name.size(), name) == 0 && s[name.size()] == ' ');
    if (item.kind == K::BodySection || item.kind == K::Binary || item.kind == K::Rfc822 ||
        item.kind == K::Rfc822Header || item.kind == K::Rfc822Text)
      check_literal(s, name.size() + 1);
    if (item.kind == K::Binary && !item.partial) {
      FetchItem sz = item;
      sz.kind = K::BinarySize;
      auto size_text = encode_message_item(sz, m, false);
      auto content = binary_content(root, message, item.section.part);
      check(std::get<std::string>(size_text) == response_name(sz) + ' ' + std::to_string(std::get<std::string>(content).size()));
    }
    if (item.section.text == Section::Text::HeaderFields || item.section.text == Section::Text::HeaderFieldsNot) {
      std::string_view block = message.substr(0, root.header_length);
      std::string kept = filter_header(block, item.section.fields, item.section.text == Section::Text::HeaderFieldsNot);
      check(!kept.empty() && kept.back() == '\n' && kept.size() <= block.size() + 2);
    }
  }
  // The ranges the request reads are all the encoders need: the answers from those pieces
  // alone are the answers from the whole message.
  std::vector<OctetPiece> pieces;
  for (const OctetRange& r : content_ranges(root, req.items)) {
    check(r.offset <= message.size() && r.length <= message.size() - r.offset);
    check(pieces.empty() || r.offset > pieces.back().offset + pieces.back().octets.size());  // merged
    pieces.push_back({r.offset, std::string(message.substr(r.offset, r.length))});
  }
  MessageData parts = m;
  parts.octets = OctetsView(message.size(), pieces);
  for (const FetchItem& item : req.items) check(encode_message_item(item, parts, false) == encode_message_item(item, m, false));
  return 0;
}
