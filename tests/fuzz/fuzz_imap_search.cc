// libFuzzer target: IMAP SEARCH (cmail/imap/search.h). Byte 0 chooses the command (bit 0 UID
// SEARCH, bit 1 IMAP4rev2 ESEARCH answers, bit 2 small limits) and bits 4-7 of it the flags of
// the messages; the rest is the arguments of SEARCH as a line with its literals inline. What
// parses is evaluated on four fixed messages (plain, base64, quoted-printable ISO-8859-1 in a
// multipart, an encapsulated message) in a view with a saved result. Invariants: a key and
// NOT of it disagree on every message; evaluation gives the same answer twice and the same
// with the message's text absent for keys that read no text; the response is one line that
// parses as IMAP values, and what SAVE keeps is sorted and found.
#include <cmail/imap/search.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace cmail;
using namespace cmail::imap;

void check(bool ok) {
  if (!ok) std::abort();
}

const char* const kMessages[] = {
    "From: =?iso-8859-1?q?Andr=E9?= <andre@example.org>\r\nTo: bob@example.net\r\n"
    "Subject: plain\r\nDate: Mon, 15 Mar 2021 01:30:00 +1400\r\n\r\nHello there\r\n",
    "Subject: =?utf-8?b?w4RyZ2Vy?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\nDate: 1 Jan 2000 00:00 +0000\r\n\r\nR3LDvMOfZSBhdXMgS8O2bG4K\r\n",
    "Subject: parts\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "Caf=E9 cr=E8me\r\n--XX\r\nContent-Type: application/octet-stream\r\n\r\nbinary\r\n--XX--\r\n",
    "Subject: fwd\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nCc: x@y\r\n\r\ninner body\r\n",
};

bool reads_text(const SearchKey& k) {
  using K = SearchKey::Kind;
  if (k.kind == K::Header || k.kind == K::Body || k.kind == K::Text || k.kind == K::SentBefore ||
      k.kind == K::SentOn || k.kind == K::SentSince)
    return true;
  return std::any_of(k.children.begin(), k.children.end(), reads_text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const unsigned opts = data[0];
  std::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);
  Options o;
  o.utf8 = true;
  auto parsed = parse_values(wire, o);
  auto* args = std::get_if<std::vector<Value>>(&parsed);
  if (!args) return 0;
  SearchLimits limits;
  if (opts & 4) {
    limits.max_depth = 3;
    limits.max_keys = 8;
  }
  auto r = parse_search(*args, (opts & 1) != 0, limits);
  auto* req = std::get_if<SearchRequest>(&r);
  if (!req) {
    const auto& e = std::get<SearchError>(r);
    check(!e.text.empty());
    return 0;
  }
  SearchKey negated;
  negated.kind = SearchKey::Kind::Not;
  negated.children.push_back(req->key);

  static const std::vector<std::uint32_t> uids = {3, 4, 9, 12};
  static const std::vector<std::uint32_t> saved = {4, 12};
  SearchContext ctx = SearchContext::of(uids, saved, (opts & 8) ? -300 : 0);
  std::vector<std::string> keywords = {"$Forwarded", "Work"};
  std::vector<SearchMatch> found;
  for (std::size_t i = 0; i < std::size(kMessages); ++i) {
    std::string octets = kMessages[i];
    mail::Part root = mail::parse_structure(octets);
    StoredMessageText text(octets, root);
    MessageView m;
    m.seq = static_cast<std::uint32_t>(i + 1);
    m.uid = uids[i];
    m.flags = ((opts >> 4) + i) & 0x1F;
    m.keywords = std::span<const std::string>(keywords).subspan(i % 3 == 0 ? 0 : 1);
    m.recent = (i & 1) != 0;
    m.internal_date = 1615680000 + static_cast<std::int64_t>(i) * 43200;
    m.size = octets.size();
    m.modseq = 10 + i * 7;
    m.text = &text;
    bool yes = matches(req->key, m, ctx);
    check(matches(req->key, m, ctx) == yes);
    check(matches(negated, m, ctx) == !yes);
    if (!reads_text(req->key)) {
      MessageView bare = m;
      bare.text = nullptr;
      check(matches(req->key, bare, ctx) == yes);
    }
    if (yes) found.push_back({m.seq, m.uid, m.modseq});
  }
  SearchResponse resp = encode_search_response(*req, found, "A1", (opts & 2) != 0);
  if (!resp.line.empty()) {
    check(resp.line.size() > 4 && resp.line.compare(resp.line.size() - 2, 2, "\r\n") == 0);
    check(resp.line.find('\n') == resp.line.size() - 1);
    std::string_view body(resp.line);
    body.remove_suffix(2);
    check(std::holds_alternative<std::vector<Value>>(parse_values(body)));
  }
  if (resp.saved) {
    check(std::is_sorted(resp.saved->begin(), resp.saved->end()));
    for (std::uint32_t u : *resp.saved)
      check(std::any_of(found.begin(), found.end(), [&](const SearchMatch& f) { return f.uid == u; }));
  }
  return 0;
}
