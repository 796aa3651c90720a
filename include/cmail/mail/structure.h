// cmail/mail/structure.h: the part tree of a stored message (MIME structure and envelope),
// computed once when the message is stored and kept with it, so that IMAP FETCH BODYSTRUCTURE,
// BODY, ENVELOPE, BODY[section] and BINARY are answered by seeking into the stored octets
// instead of parsing the message again. RFC 5322 (header fields, addresses), RFC 2045 and
// RFC 2046 (MIME types, parameters, multipart), RFC 2231 (parameter continuations and
// charsets), RFC 2047 (encoded words), RFC 2183 (Content-Disposition), RFC 3282
// (Content-Language), RFC 6532 (message/global), RFC 9051 7.5.2 (what IMAP needs of it).
//
// A StructureParser is fed the message in pieces of any size and returns the tree at finish();
// it never holds the whole message, only the header block being read (up to
// StructureLimits::max_header octets each), the boundaries of the open multiparts, the first octets of
// the current line and the parts built so far. The tree is the same whatever the pieces.
// Offsets and lengths count octets of the message as fed; line ends may be CRLF or bare LF.
//
// The tree (struct Part) is a value that owns all its data. For each part it holds where its
// header and its body lie, its line count, its Content-* fields, its children (the parts of a
// multipart/*, or the one encapsulated message of a message/rfc822 or message/global) and, for
// a message (the root and every encapsulated one), its envelope. How the encoder of IMAP
// responses must read the fields is said beside each; nothing here writes IMAP syntax.
//
// Malformed mail gives a tree, never an error: a missing boundary leaves a multipart without
// children, a missing close delimiter ends the multipart at the end of its parent, a header
// without a blank line ends where the part ends (the body is then empty). Past
// StructureLimits::max_depth nested multiparts and messages a container is kept as a leaf (its body is
// text); past StructureLimits::max_parts parts in all, no part is opened any more and the rest of the
// message is the body of the deepest open part.
//
// Only the empty line ends a header (RFC 5322 2.1); a line in it that is neither a field nor
// a continuation is skipped. Content-* fields count without MIME-Version, as mailers expect.
//
// encode_structure and decode_structure give the tree a compact, versioned binary form for a
// database column. The decoders (Base64Decoder, QuotedPrintableDecoder, TransferDecoder) and
// decode_encoded_words serve SEARCH and BINARY later.
//
// Thread-safety: value types and pure functions; a StructureParser or a decoder is owned by one
// user at a time. Nothing throws out of this API.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::mail {

// One parameter of Content-Type or Content-Disposition. The name is lower-cased. The value is
// unquoted (quoted-pairs resolved). RFC 2231 continuations are joined; an RFC 2231 value in
// utf-8, us-ascii or iso-8859-1 is decoded to UTF-8 and kept under the plain name (its language
// is dropped); in another charset it is kept as written, under the name with a trailing "*"
// ("title*", "iso-2022-jp'ja'%1B%24B..."), the segments joined into one value. RFC 2047 words
// in a value (a common misuse) are kept as they are. The first parameter of a name wins, but an
// RFC 2231 form wins over a plain one.
struct Param {
  std::string name, value;
  bool operator==(const Param&) const = default;
};

// One entry of an address list as IMAP writes it (RFC 9051 7.5.2, address structure). Empty
// strings stand for NIL. A group is a GroupStart entry (mailbox = the group's display name,
// the rest empty) followed by its members and a GroupEnd entry (all empty).
struct Address {
  enum class Kind : std::uint8_t { Mailbox, GroupStart, GroupEnd };
  Kind kind = Kind::Mailbox;
  std::string name;     // display name, unquoted, words joined by one space; RFC 2047 words kept
  std::string adl;      // obsolete source route "@a.example,@b.example" (RFC 5322 4.4)
  std::string mailbox;  // local part, unquoted; the group name for GroupStart
  std::string host;     // domain; empty when the address has none
  bool operator==(const Address&) const = default;
};

// An address header field: its raw value and its addresses.
struct AddressField {
  std::optional<std::string> raw;  // nullopt when the field is absent
  std::vector<Address> addresses;
  bool operator==(const AddressField&) const = default;
};

// RFC 9051 7.5.2 ENVELOPE of a message. Raw values are unfolded (RFC 5322 2.2.3) with the
// white space around them removed; RFC 2047 words are kept, as IMAP sends them. A field that
// appears twice is taken from its first occurrence. What the message has is stored as it is:
// an absent Sender or Reply-To is absent here, and the IMAP encoder writes From in its place
// as RFC 9051 7.5.2 requires.
struct Envelope {
  std::optional<std::string> date, subject, in_reply_to, message_id;
  AddressField from, sender, reply_to, to, cc, bcc;
  bool operator==(const Envelope&) const = default;
};

struct Part {
  // Where the part lies in the message, in octets. The header runs from header_offset and
  // includes the empty line that ends it; the body follows it (body_offset == header_offset +
  // header_length). A body before a boundary delimiter line ends before the line end that
  // precedes the delimiter (RFC 2046 5.1.1), unless that line end is the empty line that ends
  // the header (the body is then empty), and never before the part's last child. For the
  // root, header_offset is 0 and the body runs to the end of the message.
  std::uint64_t header_offset = 0, header_length = 0;
  std::uint64_t body_offset = 0, body_length = 0;
  // Lines of the body: its line ends (CRLF or bare LF), plus one when it is not empty and does
  // not end with a line end. Counted for every part; IMAP sends it for text/* and message/rfc822
  // (RFC 9051 9, body-fld-lines).
  std::uint64_t body_lines = 0;

  // Content-Type (RFC 2045 5.1), lower-cased. No valid Content-Type: text/plain with
  // charset=us-ascii (RFC 2045 5.2), or message/rfc822 without parameters in a multipart/digest
  // (RFC 2046 5.1.5).
  std::string type = "text", subtype = "plain";
  std::vector<Param> params;
  std::string encoding = "7bit";  // Content-Transfer-Encoding (RFC 2045 6.1), lower-cased
  std::optional<std::string> id, description, md5, location;  // raw values, nullopt if absent
  std::optional<std::string> disposition;  // RFC 2183 disposition type, lower-cased
  std::vector<Param> disposition_params;
  std::vector<std::string> languages;  // RFC 3282 language tags as written

  // multipart/*: its parts (preamble and epilogue are in the body but in no child); none when
  // it has no usable boundary or none was found (the encoder writes it as a single part), or
  // past the limits. message/rfc822 and message/global: one child, the encapsulated message,
  // whose header and body lie in this part's body and which has an envelope.
  std::vector<Part> children;
  std::optional<Envelope> envelope;  // the root and every encapsulated message

  bool is_multipart() const { return type == "multipart"; }
  bool is_message() const { return type == "message" && (subtype == "rfc822" || subtype == "global"); }
  // The value of a Content-Type parameter (name lower-case), nullopt if absent.
  std::optional<std::string_view> param(std::string_view name) const;
  bool operator==(const Part&) const = default;
};

struct StructureLimits {
  std::size_t max_header = 64 * 1024;  // octets of one header block kept for parsing
  std::size_t max_depth = 100;         // nested multiparts and messages
  std::size_t max_parts = 10000;       // parts in the tree, the root included
};

// Builds the part tree of one message fed in pieces. finish() returns the tree and makes the
// parser ready for another message.
class CMAIL_EXPORT StructureParser {
 public:
  explicit StructureParser(StructureLimits limits = {});
  void feed(std::string_view piece);
  Part finish();
  // True when a limit of StructureLimits applied so far (the tree is then partial).
  bool limited() const { return limited_; }

 private:
  // An open part: the innermost is at the back of stack_.
  struct Frame {
    Part part;
    enum class Mode : std::uint8_t { Header, Leaf, Multipart, Epilogue, Message };
    Mode mode = Mode::Header;
    std::string boundary;       // Multipart, Epilogue: the boundary of this multipart
    bool digest_child = false;  // a part of a multipart/digest (default message/rfc822)
    std::uint64_t body_lfs = 0;  // LFs before the body
    std::size_t depth = 0;       // containers around this part
  };
  struct Delimiter {
    std::size_t frame;  // the multipart in stack_ whose boundary the line is
    bool close;         // "--boundary--"
  };
  void take(std::string_view piece);
  void end_line(std::uint64_t eol);
  std::optional<Delimiter> delimiter() const;
  void open_part(std::uint64_t at, bool digest_child, std::size_t depth);
  void end_header(std::uint64_t body_offset);
  void close_top(std::uint64_t end, std::uint64_t end_lfs, bool partial);
  void update_max_boundary();

  StructureLimits limits_;
  std::vector<Frame> stack_;
  std::string header_;        // the header block being read (up to limits_.max_header)
  std::size_t header_mark_ = 0;  // header_'s size at the start of the current line
  std::string head_;          // the first octets of the current line (boundary detection)
  bool tail_padding_ = true;  // every octet of the line past head_ is SP, HTAB, CR or LF
  std::uint64_t pos_ = 0, lfs_ = 0;              // octets and LFs fed so far
  std::uint64_t line_start_ = 0, line_lfs_ = 0;  // the current line's offset, LFs before it
  std::uint64_t prev_eol_ = 0;     // where the previous line's line end starts
  bool prev_content_ = false;      // the previous line was not empty
  bool has_prev_ = false;          // the current line is not the first
  char last_ = 0, before_last_ = 0;  // the last two octets fed
  std::size_t max_boundary_ = 0;   // the longest boundary on the stack
  std::size_t parts_ = 0;
  bool frozen_ = false, limited_ = false;
  std::optional<Part> root_;       // the root, once closed
};

CMAIL_EXPORT Part parse_structure(std::string_view message, StructureLimits limits = {});

// RFC 5322 3.4 address-list (with the obsolete forms of RFC 5322 4.4: routes, empty members,
// CFWS between the parts of a local part or domain), as IMAP writes it.
CMAIL_EXPORT std::vector<Address> parse_address_list(std::string_view value);

// RFC 2047 encoded words of header text decoded to UTF-8 (B and Q; utf-8, us-ascii and
// iso-8859-1). A word in another charset, or malformed, is kept as it is; white space between
// two encoded words is dropped (RFC 2047 6.2). A word is taken wherever it appears, also
// inside an atom, as mail readers do.
CMAIL_EXPORT std::string decode_encoded_words(std::string_view text);

// Octets in `charset` (any case; empty is us-ascii) as UTF-8: utf-8 and us-ascii pass through
// as they are, iso-8859-1 is converted; nullopt for another charset. What RFC 2047 words, RFC
// 2231 parameters and IMAP SEARCH (body text) are decoded with.
CMAIL_EXPORT std::optional<std::string> to_utf8(std::string_view charset, std::string_view octets);

// Calls fn(lower-cased name, value) for each field of a header block, in order, values unfolded
// (RFC 5322 2.2.3) and trimmed; the empty line ends the block (RFC 5322 2.1), and a line that
// neither continues a field nor holds a colon is skipped. The parser the part tree uses.
CMAIL_EXPORT void for_each_header_field(std::string_view block,
                                        const std::function<void(std::string_view, std::string_view)>& fn);

// The streaming transfer decoders: feed() appends the decoded octets of each piece to `out`,
// finish() what the end of the input completes; size() is the count of decoded octets so far
// (after finish(), RFC 3516 BINARY.SIZE). The output is the same whatever the pieces.
//
// RFC 2045 6.8: characters outside the alphabet are ignored, "=" ends a quantum (what follows
// starts a new one), an incomplete quantum at the end gives what its bits hold.
class CMAIL_EXPORT Base64Decoder {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  std::uint64_t size() const { return size_; }
  // True when the input was not clean base64 (a stray character or a truncated quantum).
  bool damaged() const { return damaged_; }

 private:
  std::uint32_t bits_ = 0;
  int count_ = 0;
  std::uint64_t size_ = 0;
  bool damaged_ = false;
};

// RFC 2045 6.7: "=XX" (either case of hex), soft line breaks "=" [WSP] line end, trailing white
// space of a line dropped; line ends kept as written; a malformed "=" is kept literally; an
// "=" at the very end is a soft line break.
class CMAIL_EXPORT QuotedPrintableDecoder {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  std::uint64_t size() const { return size_; }
  bool damaged() const { return damaged_; }

 private:
  void put(char c, std::string& out);
  void emit(std::string_view s, std::string& out);
  enum class State : std::uint8_t { Text, Cr, Eq, EqHex, EqSpace, EqCr };
  State state_ = State::Text;
  std::string space_;     // white space not yet known to be trailing
  std::string eq_space_;  // white space after an "=" (a soft line break or literal)
  char hex_ = 0;
  std::uint64_t size_ = 0;
  bool damaged_ = false;
};

// A body's Content-Transfer-Encoding undone: 7bit, 8bit and binary pass through; base64 and
// quoted-printable decode. known() is false for another encoding (RFC 3516 UNKNOWN-CTE); the
// octets then pass through.
class CMAIL_EXPORT TransferDecoder {
 public:
  explicit TransferDecoder(std::string_view encoding);
  bool known() const { return kind_ != Kind::Unknown; }
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  std::uint64_t size() const;

 private:
  enum class Kind : std::uint8_t { Identity, Base64, QuotedPrintable, Unknown };
  Kind kind_;
  std::uint64_t size_ = 0;
  Base64Decoder b64_;
  QuotedPrintableDecoder qp_;
};

// The stored form: "CMS", a version octet (1), then the tree as tagged fields (varints and
// length-prefixed strings), children nested. decode_structure returns nullopt for anything that
// is not that form (another version, a truncated or damaged value, nesting deeper than 200).
CMAIL_EXPORT std::string encode_structure(const Part& root);
CMAIL_EXPORT std::optional<Part> decode_structure(std::string_view stored);

}  // namespace cmail::mail
