// cmail/imap/search.h: IMAP SEARCH as pure functions for the server engine: the parser of the
// SEARCH and UID SEARCH arguments into a SearchRequest (RFC 9051 6.4.4, RFC 3501 6.4.4, the
// RETURN options of ESEARCH RFC 4731 and SEARCHRES RFC 5182, the MODSEQ key of CONDSTORE
// RFC 7162 3.1.5), the evaluation of its SearchKey tree against one message (matches), the
// text a message is searched in (MessageText, and StoredMessageText that decodes it from the
// stored octets and their mail::Part tree), and the encoder of the untagged response
// (SEARCH or ESEARCH) with the result that SAVE keeps. docs/imap-search.md says what is
// matched how.
//
// Ownership: a SearchRequest and its SearchKey tree are values. A MessageView points to the
// message's keywords and to a MessageText the caller owns for the duration of the call; a
// SearchContext points to the saved result the caller owns. StoredMessageText keeps views of
// the octets and the Part tree it was given: both must outlive it.
//
// Thread-safety: value types and pure functions; a MessageText (its lazy caches) is used by
// one thread at a time. Nothing throws out of this API.
#pragma once

#include <cmail/export.h>
#include <cmail/imap/codec.h>
#include <cmail/imap/flags.h>
#include <cmail/mail/structure.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmail::imap {


// One search key. Keys that are the negation of another are kept as what they test:
// UNSEEN is NoFlag with kSeen, NEW is New, OLD is Old (RFC 3501 6.4.4).
struct SearchKey {
  enum class Kind : std::uint8_t {
    And,         // children: all hold (ALL is an And without children; a parenthesized list)
    Or,          // children: two; either holds
    Not,         // children: one; it does not hold
    Flag,        // flags: every bit set (ANSWERED DELETED DRAFT FLAGGED SEEN)
    NoFlag,      // flags: every bit clear (UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN)
    Recent,      // RECENT
    New,         // NEW: recent and not seen
    Old,         // OLD: not recent
    Keyword,     // text: the keyword is set (KEYWORD)
    Unkeyword,   // text: the keyword is not set (UNKEYWORD)
    Larger,      // number: size > number (LARGER)
    Smaller,     // number: size < number (SMALLER)
    Before,      // day: internal date's day < day (BEFORE)
    On,          // day: internal date's day == day (ON)
    Since,       // day: internal date's day >= day (SINCE)
    SentBefore,  // day: Date: field's day < day (SENTBEFORE)
    SentOn,      // day: Date: field's day == day (SENTON)
    SentSince,   // day: Date: field's day >= day (SENTSINCE)
    Header,      // name (lower-case), text: a field of that name contains text (HEADER, and
                 // BCC CC FROM SUBJECT TO with their field name)
    Body,        // text: the body text contains it (BODY)
    Text,        // text: the header or the body text contains it (TEXT)
    Sequence,    // set: the message sequence number is in it ("$": the saved result)
    Uid,         // set: the UID is in it (UID; "$": the saved result)
    ModSeq,      // number: modseq >= number (MODSEQ); entry, entry_type as sent
  };
  Kind kind = Kind::And;
  std::uint32_t flags = 0;
  std::string name;   // Header
  std::string text;   // Keyword, Unkeyword, Header, Body, Text: as sent (UTF-8)
  std::uint64_t number = 0;
  std::int64_t day = 0;  // days since 1970-01-01 (proleptic Gregorian)
  SequenceSet set;
  std::string entry, entry_type;  // ModSeq: RFC 7162 entry-name and "priv"/"shared"/"all"
  std::vector<SearchKey> children;
  bool operator==(const SearchKey&) const = default;
};

// RETURN options (RFC 4731 3.1, RFC 5182 2.4) as bits.
constexpr unsigned kReturnMin = 1u << 0;
constexpr unsigned kReturnMax = 1u << 1;
constexpr unsigned kReturnAll = 1u << 2;
constexpr unsigned kReturnCount = 1u << 3;
constexpr unsigned kReturnSave = 1u << 4;

struct SearchRequest {
  bool uid = false;        // UID SEARCH: the response names UIDs
  bool esearch = false;    // RETURN was given: the answer is ESEARCH (RFC 4731 3.1)
  unsigned returns = 0;    // kReturn* bits; RETURN () is kReturnAll (RFC 4731 3.1)
  std::string charset;     // as sent, upper-cased ("UTF-8", "US-ASCII"); empty if none
  SearchKey key;           // an And of the keys, children ordered cheap first
  bool modseq = false;     // a MODSEQ key is in the tree (RFC 7162 3.1.5: the answer says MODSEQ)
  bool uses_saved = false; // "$" appears (RFC 5182)
  bool operator==(const SearchRequest&) const = default;
};

struct SearchError {
  std::string text;          // for the tagged BAD (or NO [BADCHARSET ...] when bad_charset)
  bool bad_charset = false;  // RFC 9051 6.4.4: NO [BADCHARSET (UTF-8 US-ASCII)]
  bool operator==(const SearchError&) const = default;
};

struct SearchLimits {
  std::size_t max_depth = 32;   // nesting of NOT, OR and parenthesized lists
  std::size_t max_keys = 1000;  // keys in the request, at every level
};

// The charsets parse_search accepts, as the BADCHARSET response code lists them.
constexpr std::string_view kSearchCharsets = "(UTF-8 US-ASCII)";

// The values after "SEARCH" (or "UID SEARCH"): [RETURN (...)] [CHARSET x] search-key+.
CMAIL_EXPORT std::variant<SearchRequest, SearchError> parse_search(const std::vector<Value>& args,
                                                                   bool uid_command,
                                                                   const SearchLimits& limits = {});

// RFC 9051 9 date-text "d-Mon-yyyy" (month in any case) as days since 1970-01-01; nullopt
// for anything else (a day the month does not have included).
CMAIL_EXPORT std::optional<std::int64_t> parse_search_date(std::string_view s);
// The day of an RFC 5322 3.3 date-time (and its obsolete forms, RFC 5322 4.3), in its own
// zone: "Tue, 1 Jul 2003 10:52:37 +0200" is 2003-07-01. nullopt when no date is found.
CMAIL_EXPORT std::optional<std::int64_t> parse_rfc5322_day(std::string_view value);
// Days since 1970-01-01 of a civil date, and back.
CMAIL_EXPORT std::int64_t days_from_civil(int year, unsigned month, unsigned day);

// The lower-case form text matching compares (docs/imap-search.md): ASCII, Latin-1, Latin
// Extended-A, Greek and Cyrillic capitals to their small letters; anything else, invalid
// UTF-8 included, stays as it is.
CMAIL_EXPORT std::string search_fold(std::string_view utf8);

// The text of one message, given lazily: the engine calls it only when a text key is reached.
class CMAIL_EXPORT MessageText {
 public:
  virtual ~MessageText() = default;
  // The header block of the message, raw (folded lines, RFC 2047 words as written).
  virtual std::string_view header() = 0;
  // The body as text, UTF-8: what BODY searches (StoredMessageText says what it holds).
  virtual std::string_view body() = 0;
};

// MessageText of a stored message: header() is the root's header block; body() is, for
// every text/* leaf of the tree in order, its body with the transfer encoding undone
// (base64, quoted-printable) and its charset (utf-8, us-ascii, iso-8859-1, none) turned to
// UTF-8 (a part in another charset is taken as it is), joined by "\n"; the header of an
// encapsulated message (message/rfc822, message/global) is part of body() as well, with its
// RFC 2047 words decoded. Both are computed on the first call and kept.
class CMAIL_EXPORT StoredMessageText final : public MessageText {
 public:
  StoredMessageText(std::string_view octets, const mail::Part& root) : octets_(octets), root_(root) {}
  std::string_view header() override;
  std::string_view body() override;

 private:
  void add_body(const mail::Part& p, std::size_t depth);
  std::string_view octets_;
  const mail::Part& root_;
  std::optional<std::string> body_;
};

// What evaluation needs of one message.
struct MessageView {
  std::uint32_t seq = 0, uid = 0;
  std::uint32_t flags = 0;  // SystemFlag bits (cmail/imap/flags.h)
  std::span<const std::string> keywords;
  bool recent = false;
  std::int64_t internal_date = 0;  // Unix seconds
  std::uint64_t size = 0;          // RFC822.SIZE
  std::uint64_t modseq = 0;
  MessageText* text = nullptr;     // null: no text key matches
};

// What evaluation needs of the mailbox view.
struct SearchContext {
  std::uint32_t max_seq = 0;  // messages in the view: "*" of a sequence set
  std::uint32_t max_uid = 0;  // the largest UID in the view: "*" of a UID set
  std::span<const std::uint32_t> saved;  // RFC 5182: the saved result, UIDs ascending
  // The zone, in minutes east of UTC, in which internal dates are read for BEFORE, ON and
  // SINCE (RFC 9051 6.4.4: the date disregarding time and zone): the server's INTERNALDATE zone.
  int zone_minutes = 0;
  // A context for the view whose UIDs by sequence number are `uids` (ascending).
  static SearchContext of(std::span<const std::uint32_t> uids, std::span<const std::uint32_t> saved = {},
                          int zone_minutes = 0);
};

CMAIL_EXPORT bool matches(const SearchKey& key, const MessageView& message, const SearchContext& context);

// One message of the result.
struct SearchMatch {
  std::uint32_t seq = 0, uid = 0;
  std::uint64_t modseq = 0;
};

struct SearchResponse {
  std::string line;  // the untagged response with its CRLF; empty when none is due
  // RFC 5182 2.4: what SAVE keeps (UIDs ascending); nullopt when SAVE was not asked.
  std::optional<std::vector<std::uint32_t>> saved;
};

// The untagged response for `matches` (ascending by sequence number). Without RETURN:
// "* SEARCH n..." with " (MODSEQ m)" when the request has a MODSEQ key (RFC 7162 3.1.5),
// unless `esearch_always` (IMAP4rev2, RFC 9051 6.4.4: the answer is ESEARCH, as RETURN (ALL)).
// With RETURN: "* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [COUNT n] [ALL set] [MODSEQ m]"
// (RFC 4731 3.1), nothing when SAVE is the only option (RFC 5182 2.4).
CMAIL_EXPORT SearchResponse encode_search_response(const SearchRequest& request,
                                                   std::span<const SearchMatch> matches,
                                                   std::string_view tag, bool esearch_always = false);

// Numbers ascending as a compact sequence set: "1:3,5".
CMAIL_EXPORT std::string compress_numbers(std::span<const std::uint32_t> numbers);

}  // namespace cmail::imap
