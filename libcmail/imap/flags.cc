// IMAP message flags (RFC 9051 2.3.2): see cmail/imap/flags.h.
#include <cmail/imap/flags.h>

#include <cmail/proto/ascii.h>

#include <utility>

namespace cmail::imap {

using proto::ascii_upper;

namespace {

// RFC 9051 2.3.2: the system flags, in the order of their bits.
constexpr std::pair<std::uint32_t, std::string_view> kSystemFlags[] = {
    {kSeen, "\\Seen"}, {kAnswered, "\\Answered"}, {kFlagged, "\\Flagged"},
    {kDeleted, "\\Deleted"}, {kDraft, "\\Draft"},
};

}  // namespace

std::vector<std::string> flag_names(const Flags& f) {
  std::vector<std::string> out;
  for (const auto& [bit, name] : kSystemFlags)
    if (f.system & bit) out.emplace_back(name);
  out.insert(out.end(), f.keywords.begin(), f.keywords.end());
  return out;
}

std::string encode_flags(const Flags& f) {
  std::string out = "(";
  for (const auto& [bit, name] : kSystemFlags) {
    if (!(f.system & bit)) continue;
    if (out.size() > 1) out += ' ';
    out += name;
  }
  for (const std::string& k : f.keywords) {
    if (out.size() > 1) out += ' ';
    out += k;
  }
  return out + ")";
}

std::optional<Flags> parse_flags(const Value& v) {
  Flags f;
  auto take = [&](const Value& item) {
    auto a = atom(item);
    if (!a && item.kind == Value::Kind::Atom) a = item.text;  // "\Seen": "\" is no ATOM-CHAR
    if (!a || a->empty()) return false;
    if ((*a)[0] == '\\') {
      // RFC 9051 9: flag = "\Answered" / "\Flagged" / "\Deleted" / "\Seen" / "\Draft" /
      // flag-keyword / flag-extension; an unknown flag-extension is refused here.
      for (const auto& [bit, name] : kSystemFlags) {
        if (ascii_upper(*a) == ascii_upper(name)) {
          f.system |= bit;
          return true;
        }
      }
      return false;
    }
    if (!is_atom(*a)) return false;  // RFC 9051 9: flag-keyword = atom
    for (const std::string& k : f.keywords)
      if (ascii_upper(k) == ascii_upper(*a)) return true;
    f.keywords.push_back(*a);
    return true;
  };
  if (v.is_list()) {
    for (const Value& item : v.items)
      if (!take(item)) return std::nullopt;
    return f;
  }
  if (!take(v)) return std::nullopt;
  return f;
}

}  // namespace cmail::imap
