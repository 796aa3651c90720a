// The FETCH items: parsing the request, writing ENVELOPE and BODYSTRUCTURE, locating sections
// in the stored octets, BINARY through the transfer decoders.
#include <cmail/imap/fetch.h>

#include <cmail/proto/ascii.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>

namespace cmail::imap {

namespace {

using proto::ascii_upper;
using proto::equals_upper;

std::string nstr(const std::optional<std::string>& s, bool utf8) { return encode_nstring(s, utf8); }
std::string str(std::string_view s, bool utf8) { return quote_or_literal(s, utf8); }
std::string nstr_empty(std::string_view s, bool utf8) { return s.empty() ? std::string("NIL") : str(s, utf8); }

// The parts of a section-part "1.2.3" and where it ends in `s` (at the "." before the text, or
// at the end). nullopt when a number is not an nz-number.
struct PartPath {
  std::vector<std::uint32_t> part;
  std::string_view rest;  // what follows the path and its "." separator
};
std::optional<PartPath> split_part_path(std::string_view s) {
  PartPath out;
  while (!s.empty() && s[0] >= '0' && s[0] <= '9') {
    std::size_t end = s.find('.');
    std::string_view digits = s.substr(0, end);
    auto n = parse_nz_number(digits);  // RFC 9051 9: section-part = nz-number *("." nz-number)
    if (!n) return std::nullopt;
    out.part.push_back(*n);
    if (end == std::string_view::npos) {
      s = {};
      break;
    }
    s.remove_prefix(end + 1);
    if (s.empty()) return std::nullopt;  // "1." with nothing after
  }
  out.rest = s;
  return out;
}

// RFC 9051 9: section-spec, the text between the brackets of BODY[...].
std::optional<Section> parse_section(std::string_view s) {
  auto path = split_part_path(s);
  if (!path) return std::nullopt;
  Section sec;
  sec.part = std::move(path->part);
  std::string_view rest = path->rest;
  if (rest.empty()) return sec;
  std::size_t sp = rest.find(' ');
  std::string_view word = rest.substr(0, sp);
  std::string_view list = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  if (equals_upper(word, "HEADER")) sec.text = Section::Text::Header;
  else if (equals_upper(word, "TEXT")) sec.text = Section::Text::Text;
  else if (equals_upper(word, "MIME")) sec.text = Section::Text::Mime;
  else if (equals_upper(word, "HEADER.FIELDS")) sec.text = Section::Text::HeaderFields;
  else if (equals_upper(word, "HEADER.FIELDS.NOT")) sec.text = Section::Text::HeaderFieldsNot;
  else return std::nullopt;
  // RFC 9051 9: section-text = section-msgtext / "MIME": MIME only after a part number.
  if (sec.text == Section::Text::Mime && sec.part.empty()) return std::nullopt;
  bool fields = sec.text == Section::Text::HeaderFields || sec.text == Section::Text::HeaderFieldsNot;
  if (!fields) return sp == std::string_view::npos ? std::optional<Section>(sec) : std::nullopt;
  // RFC 9051 9: "HEADER.FIELDS" [".NOT"] SP header-list; header-list = "(" header-fld-name
  // *(SP header-fld-name) ")"; header-fld-name = astring. The codec parses the list.
  if (sp == std::string_view::npos) return std::nullopt;
  auto values = parse_values(list);
  auto* vs = std::get_if<std::vector<Value>>(&values);
  if (!vs || vs->size() != 1 || !(*vs)[0].is_list() || (*vs)[0].items.empty()) return std::nullopt;
  for (const Value& v : (*vs)[0].items) {
    auto name = astring(v);
    if (!name || name->empty()) return std::nullopt;
    sec.fields.push_back(std::move(*name));
  }
  return sec;
}

// RFC 9051 9: "<" number "." nz-number ">".
std::optional<Partial> parse_partial(std::string_view s) {
  if (s.size() < 5 || s.front() != '<' || s.back() != '>') return std::nullopt;
  s = s.substr(1, s.size() - 2);
  std::size_t dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  auto origin = parse_number(s.substr(0, dot));
  auto size = parse_nz_number(s.substr(dot + 1));
  if (!origin || !size) return std::nullopt;
  return Partial{*origin, *size};
}

// The closing "]" of a section opened at s[open], skipping quoted strings.
std::size_t section_end(std::string_view s, std::size_t open) {
  bool quoted = false;
  for (std::size_t i = open + 1; i < s.size(); ++i) {
    char c = s[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ']') {
      return i;
    }
  }
  return std::string_view::npos;
}

void push_item(std::vector<FetchItem>& items, FetchItem::Kind kind) {
  FetchItem it;
  it.kind = kind;
  items.push_back(std::move(it));
}

// RFC 9051 6.4.5: the macros.
bool expand_macro(std::string_view name, std::vector<FetchItem>& items) {
  using K = FetchItem::Kind;
  bool all = equals_upper(name, "ALL"), fast = equals_upper(name, "FAST"), full = equals_upper(name, "FULL");
  if (!all && !fast && !full) return false;
  // RFC 9051 6.4.5: FAST = (FLAGS INTERNALDATE RFC822.SIZE); ALL adds ENVELOPE; FULL adds
  // ENVELOPE and BODY.
  push_item(items, K::Flags);
  push_item(items, K::InternalDate);
  push_item(items, K::Rfc822Size);
  if (all || full) push_item(items, K::Envelope);
  if (full) push_item(items, K::Body);
  return true;
}

std::string section_text(const Section& s) {
  std::string out;
  for (std::size_t i = 0; i < s.part.size(); ++i) {
    if (i > 0) out += '.';
    out += std::to_string(s.part[i]);
  }
  const char* word = nullptr;
  switch (s.text) {
    case Section::Text::None: break;
    case Section::Text::Header: word = "HEADER"; break;
    case Section::Text::HeaderFields: word = "HEADER.FIELDS"; break;
    case Section::Text::HeaderFieldsNot: word = "HEADER.FIELDS.NOT"; break;
    case Section::Text::Text: word = "TEXT"; break;
    case Section::Text::Mime: word = "MIME"; break;
  }
  if (word) {
    if (!s.part.empty()) out += '.';
    out += word;
  }
  if (!s.fields.empty()) {
    out += " (";
    for (std::size_t i = 0; i < s.fields.size(); ++i) {
      if (i > 0) out += ' ';
      std::string name = ascii_upper(s.fields[i]);
      // A "]" would end the section for the reader: such a name is quoted.
      out += name.find(']') == std::string::npos ? encode_astring(name) : quote_or_literal(name);
    }
    out += ')';
  }
  return out;
}

std::string encode_params(const std::vector<mail::Param>& params, bool utf8) {
  if (params.empty()) return "NIL";  // RFC 9051 9: body-fld-param = "(" string SP string ... ")" / nil
  std::string out = "(";
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i > 0) out += ' ';
    out += str(params[i].name, utf8) + ' ' + str(params[i].value, utf8);
  }
  return out + ')';
}

// RFC 9051 9: body-fld-dsp SP body-fld-lang SP body-fld-loc, after the md5 (one part) or the
// parameters (multipart).
std::string encode_extension_tail(const mail::Part& p, bool utf8) {
  std::string out = " ";
  if (p.disposition)  // body-fld-dsp = "(" string SP body-fld-param ")" / nil
    out += '(' + str(*p.disposition, utf8) + ' ' + encode_params(p.disposition_params, utf8) + ')';
  else
    out += "NIL";
  out += ' ';
  if (p.languages.empty()) {  // body-fld-lang = nstring / "(" string *(SP string) ")"
    out += "NIL";
  } else {
    out += '(';
    for (std::size_t i = 0; i < p.languages.size(); ++i) {
      if (i > 0) out += ' ';
      out += str(p.languages[i], utf8);
    }
    out += ')';
  }
  out += ' ' + nstr(p.location, utf8);  // body-fld-loc = nstring
  return out;
}

void encode_addresses(std::string& out, const std::vector<mail::Address>& list, bool utf8) {
  if (list.empty()) {  // RFC 9051 9: env-from = "(" 1*address ")" / nil
    out += "NIL";
    return;
  }
  out += '(';
  for (const mail::Address& a : list) {
    // RFC 9051 9: address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"
    out += '(';
    switch (a.kind) {
      case mail::Address::Kind::Mailbox:
        // RFC 9051 7.5.2: a NIL host marks group syntax, so a mailbox without a domain (or a
        // local part) must not send NIL there; the placeholders are Dovecot's.
        out += nstr_empty(a.name, utf8) + ' ' + nstr_empty(a.adl, utf8) + ' ' +
               str(a.mailbox.empty() ? std::string_view("MISSING_MAILBOX") : std::string_view(a.mailbox), utf8) + ' ' +
               str(a.host.empty() ? std::string_view("MISSING_DOMAIN") : std::string_view(a.host), utf8);
        break;
      case mail::Address::Kind::GroupStart:  // RFC 9051 7.5.2: mailbox = the group name, host NIL
        out += "NIL NIL " + nstr_empty(a.mailbox, utf8) + " NIL";
        break;
      case mail::Address::Kind::GroupEnd:  // RFC 9051 7.5.2: mailbox NIL and host NIL
        out += "NIL NIL NIL NIL";
        break;
    }
    out += ')';
  }
  out += ')';
}

void encode_part(std::string& out, const mail::Part& p, bool ext, bool utf8) {
  out += '(';
  if (p.is_multipart() && !p.children.empty()) {
    // RFC 9051 9: body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
    for (const mail::Part& c : p.children) encode_part(out, c, ext, utf8);
    out += ' ' + str(p.subtype, utf8);
    if (ext) out += ' ' + encode_params(p.params, utf8) + encode_extension_tail(p, utf8);
    out += ')';
    return;
  }
  // RFC 9051 9: body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP body-fld-enc SP
  // body-fld-octets.
  std::vector<mail::Param> params = p.params;
  // RFC 2045 5.2: a text part without a charset is us-ascii; written out last, as Dovecot does.
  if (p.type == "text" && !p.param("charset")) params.push_back(mail::Param{"charset", "us-ascii"});
  out += str(p.type, utf8) + ' ' + str(p.subtype, utf8) + ' ' + encode_params(params, utf8) + ' ' +
         nstr(p.id, utf8) + ' ' + nstr(p.description, utf8) + ' ' + str(p.encoding, utf8) + ' ' +
         std::to_string(p.body_length);
  if (p.is_message() && !p.children.empty()) {
    // RFC 9051 9: body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
    const mail::Part& inner = p.children.front();
    out += ' ' + encode_envelope(inner.envelope.value_or(mail::Envelope{}), utf8) + ' ';
    encode_part(out, inner, ext, utf8);
    out += ' ' + std::to_string(p.body_lines);
  } else if (p.type == "text") {
    out += ' ' + std::to_string(p.body_lines);  // RFC 9051 9: body-type-text ... SP body-fld-lines
  }
  // RFC 9051 9: body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
  if (ext) out += ' ' + nstr(p.md5, utf8) + encode_extension_tail(p, utf8);
  out += ')';
}

bool is_line_start_field_char(char c) { return c != ' ' && c != '\t'; }

}  // namespace

std::optional<FetchItem> parse_fetch_att(std::string_view text) {
  using K = FetchItem::Kind;
  FetchItem it;
  std::size_t open = text.find('[');
  if (open == std::string_view::npos) {
    static constexpr std::array<std::pair<const char*, K>, 11> kSimple{{
        {"UID", K::Uid},
        {"FLAGS", K::Flags},
        {"INTERNALDATE", K::InternalDate},
        {"RFC822.SIZE", K::Rfc822Size},
        {"ENVELOPE", K::Envelope},
        {"BODY", K::Body},
        {"BODYSTRUCTURE", K::BodyStructure},
        {"RFC822", K::Rfc822},
        {"RFC822.HEADER", K::Rfc822Header},
        {"RFC822.TEXT", K::Rfc822Text},
        {"MODSEQ", K::ModSeq},  // RFC 7162 3.1.4.1
    }};
    for (const auto& [name, kind] : kSimple)
      if (equals_upper(text, name)) {
        it.kind = kind;
        return it;
      }
    return std::nullopt;
  }
  std::string_view name = text.substr(0, open);
  std::size_t close = section_end(text, open);
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view inside = text.substr(open + 1, close - open - 1);
  std::string_view after = text.substr(close + 1);
  bool binary = false;
  if (equals_upper(name, "BODY") || equals_upper(name, "BODY.PEEK")) {
    it.kind = K::BodySection;
    it.peek = name.size() > 4;
  } else if (equals_upper(name, "BINARY") || equals_upper(name, "BINARY.PEEK")) {
    it.kind = K::Binary;  // RFC 3516 6: "BINARY" [".PEEK"] section-binary [partial]
    it.peek = name.size() > 6;
    binary = true;
  } else if (equals_upper(name, "BINARY.SIZE")) {
    it.kind = K::BinarySize;  // RFC 3516 6: "BINARY.SIZE" section-binary
    binary = true;
  } else {
    return std::nullopt;
  }
  if (binary) {
    // RFC 3516 6: section-binary = "[" [section-part] "]"
    auto path = split_part_path(inside);
    if (!path || !path->rest.empty()) return std::nullopt;
    it.section.part = std::move(path->part);
  } else {
    auto sec = parse_section(inside);
    if (!sec) return std::nullopt;
    it.section = std::move(*sec);
  }
  if (!after.empty()) {
    if (it.kind == K::BinarySize) return std::nullopt;
    auto partial = parse_partial(after);
    if (!partial) return std::nullopt;
    it.partial = partial;
  }
  return it;
}

std::variant<FetchRequest, std::string> parse_fetch(const std::vector<Value>& args) {
  FetchRequest req;
  if (args.empty()) return std::string("missing fetch items");
  const Value& first = args[0];
  if (first.is_list()) {
    // RFC 9051 9: "(" fetch-att *(SP fetch-att) ")"; the macros stand alone.
    if (first.items.empty()) return std::string("empty list of fetch items");
    for (const Value& v : first.items) {
      std::optional<FetchItem> it;
      if (v.kind == Value::Kind::Atom) it = parse_fetch_att(v.text);
      if (!it) return "invalid fetch item " + encode(v);
      req.items.push_back(std::move(*it));
    }
  } else if (first.kind == Value::Kind::Atom) {
    if (!expand_macro(first.text, req.items)) {
      auto it = parse_fetch_att(first.text);
      if (!it) return "invalid fetch item " + first.text;
      req.items.push_back(std::move(*it));
    }
  } else {
    return std::string("invalid fetch items");
  }
  // RFC 7162 3.1.4.1 and 3.2.6: fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
  for (std::size_t i = 1; i < args.size(); ++i) {
    const Value& mods = args[i];
    if (!mods.is_list() || mods.items.empty()) return std::string("invalid fetch modifiers");
    for (std::size_t j = 0; j < mods.items.size(); ++j) {
      const Value& m = mods.items[j];
      if (m.kind == Value::Kind::Atom && equals_upper(m.text, "CHANGEDSINCE")) {
        // RFC 7162 7: chgsince-fetch-mod = "CHANGEDSINCE" SP mod-sequence-value (1 ... 2^63-1)
        if (req.changed_since || j + 1 == mods.items.size()) return std::string("invalid CHANGEDSINCE");
        auto n = number64(mods.items[++j]);
        if (!n || *n == 0) return std::string("invalid CHANGEDSINCE");
        req.changed_since = *n;
      } else if (m.kind == Value::Kind::Atom && equals_upper(m.text, "VANISHED")) {
        if (req.vanished) return std::string("VANISHED twice");
        req.vanished = true;
      } else {
        return "unknown fetch modifier " + encode(m);
      }
    }
  }
  // RFC 7162 3.2.6: VANISHED only together with CHANGEDSINCE.
  if (req.vanished && !req.changed_since) return std::string("VANISHED without CHANGEDSINCE");
  // RFC 7162 3.1.4.1: CHANGEDSINCE implies the MODSEQ item.
  if (req.changed_since &&
      std::none_of(req.items.begin(), req.items.end(), [](const FetchItem& i) { return i.kind == FetchItem::Kind::ModSeq; }))
    push_item(req.items, FetchItem::Kind::ModSeq);
  return req;
}

bool sets_seen(const FetchRequest& request) {
  using K = FetchItem::Kind;
  return std::any_of(request.items.begin(), request.items.end(), [](const FetchItem& i) {
    // RFC 9051 6.4.5 and RFC 3516 4.1: BODY[...] and BINARY[...] set \Seen, .PEEK does not;
    // RFC 3501 6.4.5: RFC822 and RFC822.TEXT are BODY[] and BODY[TEXT].
    return ((i.kind == K::BodySection || i.kind == K::Binary) && !i.peek) || i.kind == K::Rfc822 ||
           i.kind == K::Rfc822Text;
  });
}

std::string response_name(const FetchItem& item) {
  using K = FetchItem::Kind;
  std::string partial = item.partial ? '<' + std::to_string(item.partial->origin) + '>' : std::string();
  switch (item.kind) {
    case K::Uid: return "UID";
    case K::Flags: return "FLAGS";
    case K::InternalDate: return "INTERNALDATE";
    case K::Rfc822Size: return "RFC822.SIZE";
    case K::Envelope: return "ENVELOPE";
    case K::Body: return "BODY";
    case K::BodyStructure: return "BODYSTRUCTURE";
    // RFC 9051 7.5.2: BODY[<section>]<<origin octet>>, the origin alone; .PEEK is not echoed.
    case K::BodySection: return "BODY[" + section_text(item.section) + ']' + partial;
    case K::Binary: return "BINARY[" + section_text(item.section) + ']' + partial;  // RFC 3516 4.2
    case K::BinarySize: return "BINARY.SIZE[" + section_text(item.section) + ']';
    case K::Rfc822: return "RFC822";
    case K::Rfc822Header: return "RFC822.HEADER";
    case K::Rfc822Text: return "RFC822.TEXT";
    case K::ModSeq: return "MODSEQ";
  }
  return {};
}

std::string encode_envelope(const mail::Envelope& e, bool utf8) {
  std::string out = "(" + nstr(e.date, utf8) + ' ' + nstr(e.subject, utf8) + ' ';
  encode_addresses(out, e.from.addresses, utf8);
  out += ' ';
  // RFC 9051 7.5.2: Sender and Reply-To absent or empty take From's value.
  encode_addresses(out, e.sender.addresses.empty() ? e.from.addresses : e.sender.addresses, utf8);
  out += ' ';
  encode_addresses(out, e.reply_to.addresses.empty() ? e.from.addresses : e.reply_to.addresses, utf8);
  for (const mail::AddressField* f : {&e.to, &e.cc, &e.bcc}) {
    out += ' ';
    encode_addresses(out, f->addresses, utf8);
  }
  out += ' ' + nstr(e.in_reply_to, utf8) + ' ' + nstr(e.message_id, utf8) + ')';
  return out;
}

std::string encode_body_structure(const mail::Part& root, bool extensible, bool utf8) {
  std::string out;
  encode_part(out, root, extensible, utf8);
  return out;
}

const mail::Part* find_part(const mail::Part& root, const std::vector<std::uint32_t>& part) {
  // RFC 9051 6.4.5: the parts of a multipart are numbered from 1; a message that is not
  // multipart has only a part 1 (its body); after a message/rfc822 part the numbers name the
  // parts of the encapsulated message.
  const mail::Part* node = &root;
  bool message = true;  // `node` is a message: the root or an encapsulated one
  for (std::uint32_t n : part) {
    if (!message && node->is_message() && !node->children.empty()) {
      node = &node->children.front();
      message = true;
    }
    if (node->is_multipart() && !node->children.empty()) {
      if (n > node->children.size()) return nullptr;
      node = &node->children[n - 1];
    } else if (!message || n != 1) {
      return nullptr;
    }
    message = false;
  }
  return node;
}

std::optional<OctetRange> locate_section(const mail::Part& root, const Section& section) {
  const mail::Part* node = find_part(root, section.part);
  if (!node) return std::nullopt;
  const mail::Part* msg = node;  // the message HEADER and TEXT read
  if (section.text != Section::Text::None && section.text != Section::Text::Mime && !section.part.empty()) {
    // RFC 9051 6.4.5: HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number need a part of
    // type message/rfc822 or message/global.
    if (!node->is_message() || node->children.empty()) return std::nullopt;
    msg = &node->children.front();
  }
  switch (section.text) {
    case Section::Text::None:
      if (section.part.empty()) return OctetRange{0, root.body_offset + root.body_length};
      return OctetRange{node->body_offset, node->body_length};
    case Section::Text::Header:
    case Section::Text::HeaderFields:
    case Section::Text::HeaderFieldsNot:
      return OctetRange{msg->header_offset, msg->header_length};
    case Section::Text::Text:
      return OctetRange{msg->body_offset, msg->body_length};
    case Section::Text::Mime:  // RFC 9051 6.4.5: the MIME header of the part
      return OctetRange{node->header_offset, node->header_length};
  }
  return std::nullopt;
}

std::string filter_header(std::string_view block, const std::vector<std::string>& names, bool not_) {
  std::string out;
  std::string_view end_line = "\r\n";
  bool keep = false;
  std::size_t at = 0;
  while (at < block.size()) {
    std::size_t eol = block.find('\n', at);
    std::size_t next = eol == std::string_view::npos ? block.size() : eol + 1;
    std::string_view line = block.substr(at, next - at);
    at = next;
    std::string_view bare = line;  // without its line end
    if (!bare.empty() && bare.back() == '\n') bare.remove_suffix(1);
    if (!bare.empty() && bare.back() == '\r') bare.remove_suffix(1);
    if (bare.empty()) {  // RFC 5322 2.1: the empty line ends the header
      if (line.back() == '\n') end_line = line;
      break;
    }
    if (is_line_start_field_char(line[0])) {
      std::size_t colon = bare.find(':');
      if (colon == std::string_view::npos) {
        keep = false;  // neither a field nor a continuation: skipped
        continue;
      }
      std::string_view name = bare.substr(0, colon);
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
      bool listed = std::any_of(names.begin(), names.end(),
                                [&](const std::string& n) { return ascii_upper(n) == ascii_upper(name); });
      keep = listed != not_;
    }
    if (keep) out += line;  // a field line or one of its continuation lines (RFC 5322 2.2.3)
  }
  out += end_line.empty() ? std::string_view("\r\n") : end_line;
  return out;
}

std::string_view OctetsView::slice(const OctetRange& r) const {
  auto cut = [&r](std::string_view piece, std::uint64_t at) -> std::string_view {
    if (r.offset < at || r.offset - at >= piece.size()) return {};
    const std::uint64_t from = r.offset - at;
    return piece.substr(static_cast<std::size_t>(from),
                        static_cast<std::size_t>(std::min<std::uint64_t>(r.length, piece.size() - from)));
  };
  if (!pieces_) return cut(whole_, 0);
  // The last piece starting at or before the range.
  auto it = std::upper_bound(pieces_->begin(), pieces_->end(), r.offset,
                             [](std::uint64_t o, const OctetPiece& p) { return o < p.offset; });
  if (it == pieces_->begin()) return {};
  --it;
  return cut(it->octets, it->offset);
}

std::optional<OctetRange> item_octets(const mail::Part& root, const FetchItem& item) {
  using K = FetchItem::Kind;
  switch (item.kind) {
    case K::BodySection: {
      auto range = locate_section(root, item.section);
      if (!range || !item.partial || item.section.text == Section::Text::HeaderFields ||
          item.section.text == Section::Text::HeaderFieldsNot)
        return range;  // HEADER.FIELDS: the partial applies to the filtered block
      // RFC 9051 6.4.5: <origin.size>: from origin, at most size; empty past the end.
      const std::uint64_t origin = std::min<std::uint64_t>(item.partial->origin, range->length);
      return OctetRange{range->offset + origin, std::min<std::uint64_t>(item.partial->size, range->length - origin)};
    }
    // RFC 3501 6.4.5: RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT = BODY[TEXT].
    case K::Rfc822: return OctetRange{0, root.body_offset + root.body_length};
    case K::Rfc822Header: return OctetRange{root.header_offset, root.header_length};
    case K::Rfc822Text: return OctetRange{root.body_offset, root.body_length};
    case K::Binary:
    case K::BinarySize: {
      if (item.section.part.empty()) return OctetRange{0, root.body_offset + root.body_length};
      const mail::Part* node = find_part(root, item.section.part);
      if (!node) return std::nullopt;
      return OctetRange{node->body_offset, node->body_length};
    }
    default: return std::nullopt;
  }
}

std::vector<OctetRange> content_ranges(const mail::Part& root, const std::vector<FetchItem>& items) {
  std::vector<OctetRange> ranges;
  for (const FetchItem& item : items)
    if (auto r = item_octets(root, item); r && r->length > 0) ranges.push_back(*r);
  std::sort(ranges.begin(), ranges.end(),
            [](const OctetRange& a, const OctetRange& b) { return a.offset < b.offset; });
  std::vector<OctetRange> merged;
  for (const OctetRange& r : ranges) {
    if (!merged.empty() && r.offset <= merged.back().offset + merged.back().length) {
      OctetRange& last = merged.back();
      last.length = std::max(last.offset + last.length, r.offset + r.length) - last.offset;
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

std::string_view apply_partial(std::string_view content, std::uint32_t origin, std::uint32_t size) {
  // RFC 9051 6.4.5: an origin past the end gives the empty string; a size past the end stops there.
  if (origin >= content.size()) return {};
  return content.substr(origin, size);
}

std::variant<std::string, UnknownCte> binary_content(const mail::Part& root, OctetsView octets,
                                                      const std::vector<std::uint32_t>& part) {
  if (part.empty()) return std::string(octets.slice({0, octets.size()}));
  const mail::Part* node = find_part(root, part);
  if (!node) return std::string();
  mail::TransferDecoder decoder(node->encoding);
  if (!decoder.known()) return UnknownCte{};  // RFC 3516 4.3: NO [UNKNOWN-CTE]
  std::string out;
  decoder.feed(octets.slice({node->body_offset, node->body_length}), out);
  decoder.finish(out);
  return out;
}

std::string format_internal_date(std::int64_t unix_time) {
  static constexpr std::array<const char*, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {  // out of date-year's range
    t = 0;
    gmtime_r(&t, &tm);
  }
  // RFC 9051 9: date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
  char buf[40];
  std::snprintf(buf, sizeof buf, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, kMonths[tm.tm_mon],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::variant<std::string, UnknownCte> encode_message_item(const FetchItem& item, const MessageData& m, bool utf8) {
  using K = FetchItem::Kind;
  const mail::Part& root = *m.structure;
  auto literal = [](std::string_view s, bool binary) { return encode(Value::literal(s, binary)); };
  std::string name = response_name(item) + ' ';
  switch (item.kind) {
    case K::Uid: return name + std::to_string(m.uid);
    case K::Flags: {
      std::string out = name + '(';
      for (std::size_t i = 0; i < m.flags.size(); ++i) out += (i > 0 ? " " : "") + m.flags[i];
      return out + ')';
    }
    case K::InternalDate: return name + format_internal_date(m.internal_date);
    case K::Rfc822Size: return name + std::to_string(m.octets.size());
    case K::Envelope: return name + encode_envelope(root.envelope.value_or(mail::Envelope{}), utf8);
    case K::Body: return name + encode_body_structure(root, false, utf8);
    case K::BodyStructure: return name + encode_body_structure(root, true, utf8);
    case K::BodySection: {
      auto range = item_octets(root, item);
      std::string_view content = range ? m.octets.slice(*range) : std::string_view();
      std::string filtered;
      if (range && (item.section.text == Section::Text::HeaderFields ||
                    item.section.text == Section::Text::HeaderFieldsNot)) {
        filtered = filter_header(content, item.section.fields, item.section.text == Section::Text::HeaderFieldsNot);
        content = filtered;
        if (item.partial) content = apply_partial(content, item.partial->origin, item.partial->size);
      }
      return name + literal(content, false);
    }
    case K::Rfc822:
    case K::Rfc822Header:
    case K::Rfc822Text: return name + literal(m.octets.slice(*item_octets(root, item)), false);
    case K::Binary:
    case K::BinarySize: {
      auto content = binary_content(root, m.octets, item.section.part);
      if (std::holds_alternative<UnknownCte>(content)) return UnknownCte{};
      std::string_view decoded = std::get<std::string>(content);
      if (item.kind == K::BinarySize) return name + std::to_string(decoded.size());  // RFC 3516 4.2
      if (item.partial) decoded = apply_partial(decoded, item.partial->origin, item.partial->size);
      // RFC 3516 4.2: literal8 when the decoded octets hold NUL.
      return name + literal(decoded, decoded.find('\0') != std::string_view::npos);
    }
    case K::ModSeq: return name + '(' + std::to_string(m.modseq) + ')';  // RFC 7162 3.1.4.1
  }
  return std::string();
}

}  // namespace cmail::imap
