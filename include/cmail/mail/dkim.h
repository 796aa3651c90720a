// cmail/mail/dkim.h: DKIM (RFC 6376): the tag-list parser (3.2), the DKIM-Signature (3.5) and
// key record (3.6.1) parsers, the header and body canonicalizations (3.4), the header field
// selection and the data whose hash the signature signs (3.7, 5.4); and over them, as streams,
// the Verifier (6) and the Signer (5) of whole messages, rsa-sha256 and ed25519-sha256
// (RFC 8463), with the keys of cmail/crypto/keys.h.
//
// No DNS here: the Verifier says which key records it needs ("<selector>._domainkey.<domain>")
// and the caller looks them up (mail::Resolver::txt) and hands the answers back, so nothing in
// this file waits.
//
// Ownership: value types; HeaderField views point into the message the caller keeps. A Signer
// or Verifier owns a copy of the message's header (at most its header limit) and none of the
// body. Thread-safety: pure functions; a BodyCanonicalizer, Signer or Verifier is used by one
// thread at a time. Nothing throws out of this API (malformed input is a Status or a result).
#pragma once

#include <cmail/crypto/crypto.h>
#include <cmail/crypto/keys.h>
#include <cmail/export.h>
#include <cmail/mail/resolver.h>
#include <cmail/status.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cmail::mail::dkim {

// RFC 6376 3.2: tag=value pairs separated by ";", white space (FWS) around names, values and
// separators ignored, white space inside a value kept as written (a folded value keeps its
// CRLF and WSP: callers that want none remove them, as for b= and bh=). InvalidArgument for a
// malformed list or a tag name given twice.
using TagList = std::vector<std::pair<std::string, std::string>>;
CMAIL_EXPORT Result<TagList> parse_tag_list(std::string_view text);

enum class Canon : std::uint8_t { Simple, Relaxed };
enum class Algorithm : std::uint8_t { RsaSha256, Ed25519Sha256 };

CMAIL_EXPORT const char* to_string(Algorithm a);  // "rsa-sha256", "ed25519-sha256"

// A DKIM-Signature header field's value, checked as RFC 6376 3.5 and 6.1.1 require of a
// verifier before it looks anything up.
struct Signature {
  Algorithm algorithm = Algorithm::RsaSha256;  // a=
  std::string signature;                       // b=, decoded
  std::string body_hash;                       // bh=, decoded
  Canon header_canon = Canon::Simple;          // c= (header/body; default simple/simple)
  Canon body_canon = Canon::Simple;
  std::string domain;                          // d=, lower-cased
  std::vector<std::string> headers;            // h=, names lower-cased, in order
  std::string identity;                        // i= (AUID), default "@" + d
  std::optional<std::uint64_t> body_length;    // l=
  std::string selector;                        // s=
  std::optional<std::int64_t> timestamp;       // t=
  std::optional<std::int64_t> expiration;      // x=
  // The DNS name of the key record: "<selector>._domainkey.<domain>" (RFC 6376 3.6.2.1).
  std::string key_name() const { return selector + "._domainkey." + domain; }
};

// PermFail-class errors (InvalidArgument) with the reason: v= not "1", an unknown or
// forbidden algorithm (rsa-sha1: RFC 8301 3.1), a missing required tag (v a b bh d h s),
// h= without From (5.4), i= outside d= (3.5), x= before t=, bad base64, an l= that is not a
// number of at most 76 digits.
CMAIL_EXPORT Result<Signature> parse_signature(std::string_view value);

// A key record (a TXT record's text, strings joined) of RFC 6376 3.6.1.
struct KeyRecord {
  Algorithm key_type = Algorithm::RsaSha256;   // k= (rsa, ed25519 of RFC 8463; default rsa)
  std::string public_key;                      // p=, decoded (DER SubjectPublicKeyInfo for
                                               // rsa, the 32 raw octets for ed25519); "" revoked
  bool testing = false;                        // t=y
  bool strict = false;                         // t=s: i= must be in d= exactly, no subdomain
  std::vector<std::string> hashes;             // h= (empty: any)
  bool email_service = true;                   // s= holds "*" or "email" (or is absent)
};

// InvalidArgument for a malformed record, v= other than "DKIM1" (or not first), an unknown k=,
// a missing p=, bad base64. A revoked key (p= empty) parses, with public_key empty.
CMAIL_EXPORT Result<KeyRecord> parse_key_record(std::string_view text);

// Whether `key` may verify `sig` (key type, h=, s=, t=s); the reason when not.
CMAIL_EXPORT Status key_fits(const KeyRecord& key, const Signature& sig);

// One header field of a message as it is on the wire: `name` as written, `raw` the whole
// field from its name through the CRLF that ends its last line (folded lines included).
struct HeaderField {
  std::string_view name;
  std::string_view raw;
};

// The fields of the header section of `message` (CRLF line ends), in order, up to the empty
// line; the offset of the body (after the empty line, or the end when there is none) in
// *body_offset when given. A line that neither continues a field nor has a colon ends the
// header section there (it is body, as RFC 5322 2.1 has it).
CMAIL_EXPORT std::vector<HeaderField> split_header(std::string_view message, std::size_t* body_offset = nullptr);

// A header field canonicalized (RFC 6376 3.4.1, 3.4.2), CRLF-terminated.
CMAIL_EXPORT std::string canonical_header(const HeaderField& field, Canon canon);

// The header fields that h= selects (RFC 6376 5.4.2): for each name, the last instance not
// selected yet, searching from the bottom; a name with no instance left selects nothing
// (which is how a signature "over-signs" From against an added one).
CMAIL_EXPORT std::vector<HeaderField> select_headers(const std::vector<HeaderField>& fields,
                                                     const std::vector<std::string>& names);

// The DKIM-Signature field itself with its b= value emptied (RFC 6376 3.7: "b=" stays, with
// nothing after it up to the ";" or the end), the rest unchanged.
CMAIL_EXPORT std::string without_signature_value(std::string_view raw_field);

// The octets the header hash is computed over (RFC 6376 3.7): the selected fields
// canonicalized, in h= order, then the DKIM-Signature field (raw, as in the message or as
// the signer will add it) with b= emptied, canonicalized, without its final CRLF.
CMAIL_EXPORT std::string header_hash_input(const std::vector<HeaderField>& fields,
                                           const std::vector<std::string>& names, Canon canon,
                                           std::string_view signature_field);

// The body canonicalizations (RFC 6376 3.4.3, 3.4.4) as a stream: feed() appends the canonical
// octets the input so far settles to `out` (empty lines are held back until something follows
// them), finish() what the end settles. With a limit (l=) no more than that many octets come
// out. The output is the same whatever the pieces the input is fed in.
class CMAIL_EXPORT BodyCanonicalizer {
 public:
  explicit BodyCanonicalizer(Canon canon, std::optional<std::uint64_t> limit = std::nullopt)
      : canon_(canon), limit_(limit) {}
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  // Canonical octets given out so far.
  std::uint64_t length() const { return length_; }

 private:
  void emit(std::string_view s, std::string& out);
  void content(char c, std::string& out);  // a character of a line that is not (yet) empty

  Canon canon_;
  std::optional<std::uint64_t> limit_;
  std::uint64_t length_ = 0;
  std::uint64_t blank_lines_ = 0;  // line ends held back (empty lines, or the last line's)
  bool cr_ = false;                // the input's last octet was a CR
  bool space_ = false;             // relaxed: white space held back in the current line
  bool any_ = false;               // a non-empty line was given out
};


// ---- whole messages, streamed ----

// Headers larger than this are not held: the message is neither verified nor signed.
inline constexpr std::size_t kHeaderLimit = 256 * 1024;

// The header of a message fed in pieces: held until the empty line that ends it (or the end
// of the message, or the limit), the body octets after it passed on.
class CMAIL_EXPORT HeaderSplitter {
 public:
  explicit HeaderSplitter(std::size_t limit = kHeaderLimit) : limit_(limit) {}
  // Appends what of `in` is body to `body`.
  void feed(std::string_view in, std::string& body);
  // The end of the message: a message without an empty line is all header (RFC 5322 3.5).
  void finish();
  bool done() const { return done_; }
  bool too_large() const { return too_large_; }
  // The header fields, each with its CRLF, without the empty line.
  std::string_view header() const { return header_; }

 private:
  std::size_t limit_;
  std::string header_;
  std::size_t scanned_ = 0;
  bool done_ = false, too_large_ = false;
};

// RFC 8601 2.7.1 results of one signature.
enum class Answer : std::uint8_t { None, Pass, Fail, Policy, Neutral, TempError, PermError };
CMAIL_EXPORT const char* to_string(Answer a);  // "none", "pass", ...

struct Verification {
  Answer result = Answer::None;
  std::string reason;    // why, when not pass ("body hash did not verify", "no key", ...)
  std::string domain;    // d= (empty when the field did not parse)
  std::string selector;  // s=
  std::string identity;  // i=
  Algorithm algorithm = Algorithm::RsaSha256;
  std::string b;         // the start of b= in base64 (header.b, RFC 6008 4: 8 characters)
  bool testing = false;  // the key record says t=y
};

struct VerifyOptions {
  std::size_t header_limit = kHeaderLimit;
  std::size_t max_signatures = 8;   // later DKIM-Signature fields are not checked (RFC 6376 6.1)
  std::int64_t now = 0;             // Unix time for x= (0: expiry not checked)
};

// Verifies every DKIM-Signature of a message (RFC 6376 6): feed() the message as stored (CRLF
// lines, no dot-stuffing), then key_queries() once header_done(), set_key() for each, finish()
// at the end, results(). The key lookups may start as soon as the header is in; the body
// hashes are computed as the body streams by.
class CMAIL_EXPORT Verifier {
 public:
  explicit Verifier(VerifyOptions options = {});
  ~Verifier();
  Verifier(Verifier&&) noexcept;
  Verifier& operator=(Verifier&&) noexcept;

  void feed(std::string_view octets);
  void finish();
  bool header_done() const { return splitter_.done(); }
  // The message's header as held (empty when it was too large).
  std::string_view header() const { return splitter_.header(); }
  // True when the message has no signature to check (results() is empty).
  bool unsigned_message() const;
  // The key records still wanted: (signature index, DNS name).
  std::vector<std::pair<std::size_t, std::string>> key_queries() const;
  void set_key(std::size_t index, const TxtResult& answer);
  // One per DKIM-Signature field (up to max_signatures), top down. A signature whose key was
  // never set is temperror.
  std::vector<Verification> results() const;

 private:
  struct Check;
  void start();
  VerifyOptions options_;
  HeaderSplitter splitter_;
  std::vector<Check> checks_;
  std::string scratch_;
  bool finished_ = false;
};

// The header fields a Signer signs (RFC 6376 5.4.1), each instance present, and the ones it
// over-signs (one more than present, so that none can be added: RFC 6376 8.15).
CMAIL_EXPORT const std::vector<std::string>& signed_fields();
CMAIL_EXPORT const std::vector<std::string>& oversigned_fields();

// The domain of the one address in a header's From field (RFC 5322 3.6.2), lower-case; nullopt
// when there is no From, several From fields or addresses, or no domain (RFC 7489 6.6.1).
CMAIL_EXPORT std::optional<std::string> author_domain(std::string_view header);

struct SignOptions {
  std::string domain;      // d=
  std::string selector;    // s=
  std::int64_t timestamp = 0;       // t= (0: none)
  std::int64_t expire_after = 0;    // x= = t + this (0: none)
};

// Signs a message with relaxed/relaxed canonicalization (RFC 6376 3.4.2, 3.4.4): feed() the
// message, finish(), then sign() for each key (they share the body hash).
class CMAIL_EXPORT Signer {
 public:
  explicit Signer(std::size_t header_limit = kHeaderLimit);
  void feed(std::string_view octets);
  void finish();
  bool header_done() const { return splitter_.done(); }
  // The domain of the message's one From address (lower-case), or nullopt (no From, several
  // addresses, no domain, a header too large to hold).
  std::optional<std::string> from_domain() const;
  // The DKIM-Signature field to prepend (folded, CRLF-terminated). InvalidArgument when the
  // message cannot be signed (header too large or without From).
  Result<std::string> sign(const crypto::PrivateKey& key, const SignOptions& options) const;

 private:
  HeaderSplitter splitter_;
  BodyCanonicalizer body_{Canon::Relaxed};
  crypto::Sha256 body_hash_;
  std::string scratch_;
  std::string digest_;  // of the body, at finish()
};

}  // namespace cmail::mail::dkim
