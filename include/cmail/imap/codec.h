// cmail/imap/codec.h: the IMAP wire codec shared by the server engine and the client engine:
// character classes, the values of a command or response line (atoms, numbers, NIL, quoted
// strings, literals, parenthesized lists), the typed helpers over them (astring, nstring,
// string, mailbox, tag, number, nz-number), sequence sets, and the encoders that write them
// back. RFC 9051 9 (IMAP4rev2, formal syntax) and RFC 3501 9, with RFC 7888 (LITERAL+ and
// LITERAL-), RFC 3516 (literal8 "~{N}"), RFC 5182 ("$") and RFC 6855 (UTF-8 in quoted strings).
//
// A line reaches the codec in pieces at its literals, as LineReader (cmail/proto/line_reader.h)
// delivers it: the text up to and including an announcement "{N}", "{N+}" or "~{N}" (a line
// in line mode), the N octets (exact mode), then the rest of the line, which may announce the
// next literal. A Parser is fed those pieces in order and says after each what it needs next,
// so that the engine sends "+ " for a synchronizing literal only when the text before it
// parsed, and reads exactly N octets. parse_values() is the same for a line whose literals are
// inline (tests, the client engine's own output).
//
// What the Parser calls an atom is the lenient token the commands need, checked by the typed
// helpers afterwards: a run of CHARs other than "(", ")", "{", SP, CTL and DQUOTE, so that it
// also takes list-wildcards ("%", "*": LIST patterns, "1:*"), resp-specials ("]") and "\"
// (flags such as \Seen). A "[" in an atom opens a section that runs to its matching "]" and
// may hold SP, parentheses and quoted strings, so that BODY[HEADER.FIELDS (A B)]<0.100> and
// [PERMANENTFLAGS (\Seen \*)] are each one atom; a literal inside brackets is not taken (a
// syntax error). An atom of digits only that fits number64 is a Number, and "NIL" in any case
// is Nil; both keep their text, so an astring may still be "007" or "nil".
//
// The free text of status responses (resp-text after OK, NO, BAD, BYE, PREAUTH and "+") is not
// a sequence of values; the client engine splits it off before it parses values.
//
// Thread-safety: value types and pure functions; a Parser is owned by one engine.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::imap {

// Character classes (RFC 9051 9). CHAR is %x01-7F: octets >= 0x80 and NUL are in none of them.
constexpr bool is_char(char c) { return c != 0 && static_cast<unsigned char>(c) <= 0x7F; }
constexpr bool is_ctl(char c) { return static_cast<unsigned char>(c) <= 0x1F || c == 0x7F; }  // RFC 5234 B.1: CTL
constexpr bool is_list_wildcard(char c) { return c == '%' || c == '*'; }  // RFC 9051 9: list-wildcards
constexpr bool is_quoted_special(char c) { return c == '"' || c == '\\'; }  // RFC 9051 9: quoted-specials
constexpr bool is_resp_special(char c) { return c == ']'; }  // RFC 9051 9: resp-specials
// RFC 9051 9: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
constexpr bool is_atom_special(char c) {
  return c == '(' || c == ')' || c == '{' || c == ' ' || is_ctl(c) || is_list_wildcard(c) ||
         is_quoted_special(c) || is_resp_special(c);
}
// RFC 9051 9: ATOM-CHAR = <any CHAR except atom-specials>
constexpr bool is_atom_char(char c) { return is_char(c) && !is_atom_special(c); }
// RFC 9051 9: ASTRING-CHAR = ATOM-CHAR / resp-specials
constexpr bool is_astring_char(char c) { return is_atom_char(c) || is_resp_special(c); }
// RFC 9051 9: tag = 1*<any ASTRING-CHAR except "+">
constexpr bool is_tag_char(char c) { return is_astring_char(c) && c != '+'; }
// RFC 9051 9: list-char = ATOM-CHAR / list-wildcards / resp-specials
constexpr bool is_list_char(char c) { return is_atom_char(c) || is_list_wildcard(c) || is_resp_special(c); }
// RFC 9051 9: TEXT-CHAR = <any CHAR except CR and LF>
constexpr bool is_text_char(char c) { return is_char(c) && c != '\r' && c != '\n'; }

// Whole strings of one class (false for the empty string).
CMAIL_EXPORT bool is_atom(std::string_view s);     // 1*ATOM-CHAR
CMAIL_EXPORT bool is_astring_atom(std::string_view s);  // 1*ASTRING-CHAR
CMAIL_EXPORT bool is_tag(std::string_view s);      // 1*tag-char
// Well-formed UTF-8 (RFC 3629): what RFC 9051 9 QUOTED-CHAR's UTF8-2, UTF8-3, UTF8-4 take.
CMAIL_EXPORT bool is_utf8(std::string_view s);

// Numbers (RFC 9051 9): digits only, no sign, no space; leading zeros allowed. nullopt when
// empty, when anything else is there, or when the value is over the rule's maximum.
CMAIL_EXPORT std::optional<std::uint32_t> parse_number(std::string_view s);     // number: < 2^32
CMAIL_EXPORT std::optional<std::uint32_t> parse_nz_number(std::string_view s);  // nz-number: 1 ...
CMAIL_EXPORT std::optional<std::uint64_t> parse_number64(std::string_view s);   // number64: < 2^63

// A literal announced at the end of a line piece: "{N}", "{N+}" (RFC 7888 LITERAL+), "~{N}"
// (RFC 3516 literal8), "~{N+}".
struct LiteralAnnouncement {
  std::uint64_t size = 0;          // N, at most 2^63-1 (number64)
  bool non_synchronizing = false;  // "+": the peer sends the octets without waiting for "+ "
  bool binary = false;             // "~": the octets may hold NUL
  bool operator==(const LiteralAnnouncement&) const = default;
};
// The announcement `line` ends with, if it ends with a well-formed one that starts a token (at
// the start of the piece or after SP or "("). nullopt for none, for junk between the braces,
// and for N over 2^63-1. The Parser is authoritative; this is for the engine that must know,
// after a line it refused, whether the peer will send a literal anyway (a non-synchronizing
// one) that it has to read and discard.
CMAIL_EXPORT std::optional<LiteralAnnouncement> trailing_literal(std::string_view line);
// RFC 7888, LITERAL-: a non-synchronizing literal over 4096 octets is refused with a tagged BAD
// ([TOOBIG]), and its octets must then be read and discarded (or the connection closed).
constexpr std::uint64_t kLiteralMinusMax = 4096;
constexpr bool literal_minus_refuses(const LiteralAnnouncement& a) {
  return a.non_synchronizing && a.size > kLiteralMinusMax;
}

// One value of a line.
struct Value {
  enum class Kind {
    Atom,     // text: the lenient atom (above)
    Number,   // text: the digits as sent; number: their value (number64)
    Nil,      // text: "NIL" as sent, in any case
    Quoted,   // text: the string, escapes resolved
    Literal,  // text: the octets; binary: it was literal8 "~{N}"
    List,     // items: the values between "(" and ")"
  };
  Kind kind = Kind::Atom;
  std::string text;
  std::uint64_t number = 0;
  bool binary = false;
  std::vector<Value> items;

  static Value atom(std::string_view s);  // Number or Nil when the text is one
  static Value quoted(std::string_view s);
  static Value literal(std::string_view s, bool binary = false);
  static Value nil();
  static Value list(std::vector<Value> items);
  bool is_list() const { return kind == Kind::List; }
  bool operator==(const Value&) const = default;
};

// Why a line does not parse. The engine answers BAD with `message` (LiteralMinus: BAD [TOOBIG]
// per RFC 7888).
enum class ErrorKind {
  Syntax,           // not IMAP's syntax: a stray character, a missing or double SP, "{" without
                    // "}", an unterminated quoted string or section, an unbalanced ")", ...
  Incomplete,       // the line ended inside a list, or before an announced literal arrived
  TooDeep,          // lists nested over Limits::max_depth
  TooManyItems,     // more values in the line than Limits::max_items
  StringTooLong,    // an atom or quoted string over Limits::max_string octets
  LiteralTooLarge,  // a literal over Limits::max_literal octets (or over number64)
  LiteralMinus,     // LITERAL- (Options::literal_minus): a non-synchronizing literal over 4096
  NulInLiteral,     // NUL in a literal that is not literal8 (RFC 9051 9: CHAR8 is %x01-ff)
};
CMAIL_EXPORT const char* to_string(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::Syntax;
  std::string message;  // for the BAD text and logs, e.g. "unbalanced parenthesis"
  bool operator==(const Error&) const = default;
};

struct Limits {
  std::size_t max_depth = 32;          // nesting of parenthesized lists
  std::size_t max_items = 10000;       // values in one line, at every level, lists included
  std::size_t max_string = 8192;       // octets of one atom or quoted string
  std::uint64_t max_literal = 64 << 20;  // octets of one literal (APPEND: the message)
};

struct Options {
  Limits limits;
  bool utf8 = false;           // UTF-8 in quoted strings (RFC 9051 9, RFC 6855 UTF8=ACCEPT)
  bool literal_minus = false;  // refuse "{N+}" over 4096 octets (RFC 7888 LITERAL-)
};

// Parses one line, fed in the pieces LineReader delivers (the header comment). Values are
// built as the pieces arrive, so an error shows as soon as its piece is fed.
class CMAIL_EXPORT Parser {
 public:
  enum class State {
    Line,     // wants the (next) piece of the line: feed_line()
    Literal,  // wants the octets of literal(): feed_literal(); send "+ " first unless the
              // announcement is non-synchronizing
    Done,     // the line is complete: values()
    Failed,   // error(); feed nothing more until reset(). If the failing piece announced a
              // literal, trailing_literal(piece) says whether its octets follow regardless
  };

  explicit Parser(Options options = {}) : options_(options) {}

  // A piece of the line without its line end. REQUIRES: state() == Line.
  State feed_line(std::string_view piece);
  // Octets of the announced literal, any split; the state stays Literal until all arrived
  // ("{0}" too: feed_literal("") ends it). Then Line: the rest of the line comes next, maybe
  // empty. REQUIRES: state() == Literal and octets.size() <= literal_remaining() (otherwise
  // Failed, as is feed_line() in another state than Line).
  State feed_literal(std::string_view octets);

  State state() const { return state_; }
  const LiteralAnnouncement& literal() const { return announced_; }  // in state Literal
  std::uint64_t literal_remaining() const { return remaining_; }
  const Error& error() const { return error_; }  // in state Failed
  const std::vector<Value>& values() const { return top_; }  // in state Done
  std::vector<Value> take_values() { return std::move(top_); }
  // In state Literal: the values before the announced literal, and whether a list is still
  // open around it (the engine streams APPEND's message instead of feeding it here).
  const std::vector<Value>& partial_values() const { return top_; }
  bool in_list() const { return !open_.empty(); }
  // For the next line, with the same options.
  void reset();

 private:
  State fail(ErrorKind kind, std::string message);
  bool count_item();
  std::vector<Value>& current();

  Options options_;
  State state_ = State::Line;
  std::vector<Value> top_;
  std::vector<std::size_t> open_;  // the open lists: their index in the enclosing values
  bool need_separator_ = false;    // a value just ended: SP, ")" or the end comes next
  std::size_t items_ = 0;
  LiteralAnnouncement announced_;
  std::uint64_t remaining_ = 0;
  Error error_;
};

// A whole line with its literals inline ("A1 LOGIN {3}\r\nbob pw"), without the final line
// end: split at each announcement's CRLF and fed to a Parser.
CMAIL_EXPORT std::variant<std::vector<Value>, Error> parse_values(std::string_view wire,
                                                                  const Options& options = {});

// Typed helpers over parsed values (RFC 9051 9). nullopt when the value is not of the rule.
CMAIL_EXPORT std::optional<std::string> atom(const Value& v);     // 1*ATOM-CHAR (Number, Nil too)
CMAIL_EXPORT std::optional<std::string> string(const Value& v);   // quoted / literal
CMAIL_EXPORT std::optional<std::string> astring(const Value& v);  // 1*ASTRING-CHAR / string
// nstring = string / nil: nullopt when not an nstring, an empty inner optional for NIL.
CMAIL_EXPORT std::optional<std::optional<std::string>> nstring(const Value& v);
// mailbox = "INBOX" / astring: INBOX in any case is returned as "INBOX".
CMAIL_EXPORT std::optional<std::string> mailbox(const Value& v);
CMAIL_EXPORT std::optional<std::string> tag(const Value& v);  // 1*<ASTRING-CHAR except "+">
CMAIL_EXPORT std::optional<std::uint32_t> number(const Value& v);
CMAIL_EXPORT std::optional<std::uint32_t> nz_number(const Value& v);
CMAIL_EXPORT std::optional<std::uint64_t> number64(const Value& v);

// A sequence set (RFC 9051 9: sequence-set, seq-range, seq-number; RFC 5182: "$"), normalized:
// the elements without "*" as sorted ranges, none overlapping or adjacent; the elements with
// "*" kept apart, since "*" is the largest number in use, known only when the set is applied.
struct SequenceSet {
  struct Range {
    std::uint32_t first = 0, last = 0;  // 1 <= first <= last
    bool operator==(const Range&) const = default;
  };
  std::vector<Range> ranges;
  // Elements naming "*": "*" alone (star_low == star_high == 0), or "n:*" ones with n from
  // star_low to star_high. They hold every number from min(star_low, L) to max(star_high, L)
  // for L the largest number in use ("*" alone: L only), nothing when L is 0.
  bool star = false;
  std::uint32_t star_low = 0, star_high = 0;
  bool saved = false;  // "$" alone: the engine's saved search result (RFC 5182)

  // Whether n is in the set when `largest` is the largest number in use. False for "$".
  bool contains(std::uint32_t n, std::uint32_t largest) const;
  // The numbers in the set that exist (1 ... largest), as sorted disjoint ranges; none for "$".
  std::vector<Range> resolve(std::uint32_t largest) const;
  // Calls f(n) for each n of resolve(largest), ascending.
  void for_each(std::uint32_t largest, const std::function<void(std::uint32_t)>& f) const;
  // The largest number named without "*" (0 if none): a message sequence number over the
  // mailbox's size makes the command BAD (RFC 9051 9, seq-number).
  std::uint32_t max_named() const;
  // The shortest canonical text: "1:3,5:7", then "n:*" (and "m:*" for a second bound) or "*".
  std::string to_string() const;
  bool operator==(const SequenceSet&) const = default;
};
// nullopt for 0, numbers over 2^32-1, empty elements, a leading or trailing comma, junk, and
// "$" with anything else.
CMAIL_EXPORT std::optional<SequenceSet> parse_sequence_set(std::string_view s);
// The same for a value: an Atom or Number of that text.
CMAIL_EXPORT std::optional<SequenceSet> sequence_set(const Value& v);

// Mailbox names in modified UTF-7 (RFC 3501 5.1.3), what IMAP4rev1 clients send and expect;
// IMAP4rev2 (RFC 9051 5.1) and UTF8=ACCEPT (RFC 6855 3) clients use UTF-8 itself. Printable
// ASCII stands for itself but "&", which is "&-"; any other run of characters is "&", their
// UTF-16 in base64 with "," for "/" and without padding, and "-".
// REQUIRES: utf8 is well-formed UTF-8 (is_utf8).
CMAIL_EXPORT std::string mutf7_encode(std::string_view utf8);
// nullopt for what the rule does not allow: 8-bit octets, an unterminated or empty "&...-"
// run other than "&-", base64 that is not whole UTF-16 characters or leaves bits set, a run
// that encodes printable ASCII, two runs back to back, lone surrogates.
CMAIL_EXPORT std::optional<std::string> mutf7_decode(std::string_view mutf7);

// Encoding. A quoted string is used only for text without NUL, CR and LF, 7-bit (or valid
// UTF-8 when `utf8`), and at most kMaxQuoted octets; anything else is a literal "{N}\r\n"
// followed by the octets ("~{N}" when it holds NUL, which only literal8 may carry).
constexpr std::size_t kMaxQuoted = 1024;
CMAIL_EXPORT bool can_quote(std::string_view s, bool utf8 = false);  // chars only, any length
CMAIL_EXPORT std::string quoted(std::string_view s);  // REQUIRES: can_quote(s, true)
CMAIL_EXPORT std::string quote_or_literal(std::string_view s, bool utf8 = false);
// An atom when s is 1*ASTRING-CHAR and not "NIL", else quote_or_literal().
CMAIL_EXPORT std::string encode_astring(std::string_view s, bool utf8 = false);
// "NIL" when absent.
CMAIL_EXPORT std::string encode_nstring(const std::optional<std::string>& s, bool utf8 = false);
// The wire form: parse_values() of it gives `v` back for every value a Parser produced with
// the same `utf8`. An Atom's text is written as it is (REQUIRES: it parses as one).
CMAIL_EXPORT std::string encode(const Value& v, bool utf8 = false);
// Values separated by SP, as in a line (without its line end).
CMAIL_EXPORT std::string encode(const std::vector<Value>& values, bool utf8 = false);

}  // namespace cmail::imap
