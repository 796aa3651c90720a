// cmail/imap/fetch.h: the FETCH items of IMAP (RFC 9051 6.4.5 and 7.5.2, RFC 3501 6.4.5 and
// 7.4.2, RFC 3516 BINARY, RFC 7162 CONDSTORE's MODSEQ and CHANGEDSINCE) as pure functions for
// the server engine: parse_fetch() turns the values after the sequence set into a FetchRequest
// (or the text of a BAD), and the encoders write the data items of one message from its part
// tree (cmail/mail/structure.h), its stored octets and what the caller knows of it (flags,
// date, UID, mod-sequence). Strings are written by the wire codec's encoders
// (cmail/imap/codec.h); nothing here writes a string of its own.
//
// Stored octets are served as they are stored: BODY[], RFC822, BODY[section] and RFC822.SIZE
// count and send the octets of the message as fed to the structure parser, whose offsets they
// are; a message stored with bare LF line ends is sent with bare LF (docs/imap-fetch.md).
//
// Who owns what: every result is a value; MessageData and OctetsView only borrow the tree and
// the octets for the length of a call. The engine decides what a request means for the session (UID FETCH's
// implied UID item, \Seen, VANISHED's QRESYNC check).
//
// Thread-safety: value types and pure functions. Nothing throws out of this API.
#pragma once

#include <cmail/export.h>
#include <cmail/imap/codec.h>
#include <cmail/mail/structure.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::imap {

// RFC 9051 6.4.5 / 9: section-spec. `part` is the section-part (empty for the message itself);
// `text` what follows it.
struct Section {
  enum class Text : std::uint8_t {
    None,             // BODY[] / BODY[1.2]: the message, or the part's body
    Header,           // HEADER
    HeaderFields,     // HEADER.FIELDS (names)
    HeaderFieldsNot,  // HEADER.FIELDS.NOT (names)
    Text,             // TEXT
    Mime,             // MIME: only after a part number
  };
  std::vector<std::uint32_t> part;  // nz-numbers
  Text text = Text::None;
  std::vector<std::string> fields;  // HEADER.FIELDS[.NOT]: the names as sent
  bool operator==(const Section&) const = default;
};

// RFC 9051 9: "<" number "." nz-number ">".
struct Partial {
  std::uint32_t origin = 0, size = 0;
  bool operator==(const Partial&) const = default;
};

struct FetchItem {
  enum class Kind : std::uint8_t {
    Uid, Flags, InternalDate, Rfc822Size, Envelope,
    Body,           // BODY: the non-extensible BODYSTRUCTURE
    BodyStructure,
    BodySection,    // BODY[section]<partial>, BODY.PEEK[...]
    Binary,         // RFC 3516: BINARY[part]<partial>, BINARY.PEEK[...]
    BinarySize,     // RFC 3516: BINARY.SIZE[part]
    Rfc822, Rfc822Header, Rfc822Text,
    ModSeq,         // RFC 7162 3.1.4.1
  };
  Kind kind = Kind::Uid;
  Section section;                 // BodySection, Binary, BinarySize (Binary*: part only)
  std::optional<Partial> partial;  // BodySection, Binary
  bool peek = false;               // BODY.PEEK, BINARY.PEEK
  bool operator==(const FetchItem&) const = default;
};

struct FetchRequest {
  std::vector<FetchItem> items;  // in the order sent, macros expanded
  std::optional<std::uint64_t> changed_since;  // RFC 7162 3.1.4.1: CHANGEDSINCE
  bool vanished = false;  // RFC 7162 3.2.6 (QRESYNC): VANISHED, only with CHANGEDSINCE
  bool operator==(const FetchRequest&) const = default;
};

// The values after the sequence set: "ALL", "FAST", "FULL", one fetch-att, or a parenthesized
// list of fetch-atts, then optionally the RFC 7162 fetch-modifiers list "(CHANGEDSINCE n
// VANISHED)". Item names in any case. CHANGEDSINCE adds a MODSEQ item when none is asked
// (RFC 7162 3.1.4.1). The error is a short text for the engine's BAD.
CMAIL_EXPORT std::variant<FetchRequest, std::string> parse_fetch(const std::vector<Value>& args);
// One fetch-att given as an atom's text ("BODY.PEEK[1.MIME]<0.10>"); nullopt when malformed.
CMAIL_EXPORT std::optional<FetchItem> parse_fetch_att(std::string_view text);

// RFC 9051 6.4.5: whether the request sets \Seen (BODY[...], BINARY[...], RFC822, RFC822.TEXT
// without .PEEK).
CMAIL_EXPORT bool sets_seen(const FetchRequest& request);

// RFC 9051 7.5.2: the name a data item is answered under: BODY.PEEK[x] as BODY[x], a partial by
// its origin only ("BODY[1]<0>"), header field names upper-cased ("BODY[HEADER.FIELDS (FROM)]").
CMAIL_EXPORT std::string response_name(const FetchItem& item);

// RFC 9051 7.5.2 ENVELOPE: "(" date subject from sender reply-to to cc bcc in-reply-to
// message-id ")"; Sender and Reply-To absent or empty are From's addresses. `utf8`: UTF-8 may be
// quoted (IMAP4rev2, UTF8=ACCEPT); otherwise 8-bit text goes in a literal.
CMAIL_EXPORT std::string encode_envelope(const mail::Envelope& envelope, bool utf8);
// RFC 9051 7.5.2 BODY (extensible false) and BODYSTRUCTURE (true), types and parameter names
// in the parser's lower case; the octets and lines as the tree holds them.
CMAIL_EXPORT std::string encode_body_structure(const mail::Part& root, bool extensible, bool utf8);

// The part a section-part names (RFC 9051 6.4.5 part specifiers): for the empty path the root;
// nullptr when there is no such part.
CMAIL_EXPORT const mail::Part* find_part(const mail::Part& root, const std::vector<std::uint32_t>& part);

// Where a section lies in the stored message, in octets. HEADER.FIELDS[.NOT] give the header
// block to filter with filter_header(). nullopt when the section does not exist (a part number
// past the parts, HEADER or TEXT after a part that is not message/rfc822); the engine sends it
// as an empty string, as Dovecot does (docs/imap-fetch.md).
struct OctetRange {
  std::uint64_t offset = 0, length = 0;
  bool operator==(const OctetRange&) const = default;
};
CMAIL_EXPORT std::optional<OctetRange> locate_section(const mail::Part& root, const Section& section);

// The stored octets of a message an encoder reads: all of them, or the pieces of them a
// request reads (content_ranges()), each piece at its offset in the message. Non-owning.
struct OctetPiece {
  std::uint64_t offset = 0;
  std::string octets;
  bool operator==(const OctetPiece&) const = default;
};
class CMAIL_EXPORT OctetsView {
 public:
  OctetsView() = default;
  OctetsView(std::string_view whole) : size_(whole.size()), whole_(whole) {}  // NOLINT: implicit
  OctetsView(const std::string& whole) : OctetsView(std::string_view(whole)) {}  // NOLINT: implicit
  OctetsView(const char* whole) : OctetsView(std::string_view(whole)) {}  // NOLINT: implicit
  // REQUIRES: `pieces` ascending by offset, not overlapping, within `size`; outlives the view.
  OctetsView(std::uint64_t size, const std::vector<OctetPiece>& pieces) : size_(size), pieces_(&pieces) {}
  std::uint64_t size() const { return size_; }
  // The octets of `r` cut at the end of the message: what the piece holding r.offset has of
  // them (all of them for ranges content_ranges() gave); empty when no piece holds it.
  std::string_view slice(const OctetRange& r) const;

 private:
  std::uint64_t size_ = 0;
  std::string_view whole_;
  const std::vector<OctetPiece>* pieces_ = nullptr;
};

// The octets one item reads of a message whose tree is `root` (the whole message runs to the
// end of the root's body): nullopt for items that read none and for sections that do not
// exist. HEADER.FIELDS[.NOT] read the header block, a partial BODY[section]<o.n> only its
// window, BINARY[part] the part's body.
CMAIL_EXPORT std::optional<OctetRange> item_octets(const mail::Part& root, const FetchItem& item);
// The ranges the items of a request read, ascending, overlapping and adjacent ones merged:
// what a Session reads of a stored message for them (FetchNeeds::content_items).
CMAIL_EXPORT std::vector<OctetRange> content_ranges(const mail::Part& root, const std::vector<FetchItem>& items);

// RFC 9051 6.4.5 HEADER.FIELDS / HEADER.FIELDS.NOT: the fields of a header block whose name
// is (not_: is not) one of `names`, ignoring case, each with its continuation lines, in the
// order of the block, then the empty line that ends the block (as the block writes it; CRLF
// when it has none).
CMAIL_EXPORT std::string filter_header(std::string_view header_block, const std::vector<std::string>& names,
                                       bool not_);

// RFC 9051 6.4.5: <origin.size>: the octets from origin, at most size; empty past the end.
CMAIL_EXPORT std::string_view apply_partial(std::string_view content, std::uint32_t origin, std::uint32_t size);

// RFC 3516 4.3: the part's Content-Transfer-Encoding is not one cmail can undo.
struct UnknownCte {
  bool operator==(const UnknownCte&) const = default;
};
// RFC 3516: the decoded content of a part (BINARY[part]); the whole message for the empty path;
// an empty string for a part that does not exist.
CMAIL_EXPORT std::variant<std::string, UnknownCte> binary_content(const mail::Part& root, OctetsView octets,
                                                                   const std::vector<std::uint32_t>& part);

// What the caller knows of one message.
struct MessageData {
  const mail::Part* structure = nullptr;  // REQUIRES: not null; the tree of `octets`
  OctetsView octets;                      // the stored message, or what the items read of it
  std::uint32_t uid = 0;
  std::vector<std::string> flags;  // as atoms: "\\Seen", "$Junk"
  std::int64_t internal_date = 0;  // Unix time, written in UTC
  std::uint64_t modseq = 0;
};

// RFC 9051 9 date-time in UTC: "\"03-Dec-2026 07:35:00 +0000\"" (quoted). A time outside the
// years 0 to 9999 is written as the epoch.
CMAIL_EXPORT std::string format_internal_date(std::int64_t unix_time);

// The whole text of one data item: "UID 7", "BODY[1]<0> {5}\r\nhello", "BINARY[2] ~{3}\r\n..."
// (literal8 when the decoded octets hold NUL). Content always goes in a literal.
CMAIL_EXPORT std::variant<std::string, UnknownCte> encode_message_item(const FetchItem& item, const MessageData& message,
                                                                        bool utf8);

}  // namespace cmail::imap
