// DKIM over whole messages: the header splitter, the Verifier (RFC 6376 6) and the Signer
// (RFC 6376 5), on the parsers and canonicalizations of dkim.cc and the keys of cmail-crypto.
#include <cmail/base64.h>
#include <cmail/mail/dkim.h>
#include <cmail/mail/structure.h>
#include <cmail/proto/ascii.h>

#include <algorithm>

namespace cmail::mail::dkim {

namespace {

bool is_signature_field(std::string_view name) {
  return name.size() == 14 && proto::ascii_lower(name) == "dkim-signature";
}

}  // namespace

// ---- HeaderSplitter ----

void HeaderSplitter::feed(std::string_view in, std::string& body) {
  if (done_) {
    if (!too_large_) body.append(in);
    return;
  }
  header_.append(in);
  // The header ends at the first empty line (RFC 5322 2.1): "\r\n\r\n", or "\r\n" first thing.
  std::size_t end = std::string::npos;
  if (header_.starts_with("\r\n")) {
    end = 0;
  } else {
    std::size_t from = scanned_ >= 2 ? scanned_ - 2 : 0;
    std::size_t at = header_.find("\r\n\r\n", from);
    if (at != std::string::npos) end = at + 2;
  }
  if (end != std::string::npos) {
    done_ = true;
    if (end > limit_) {
      too_large_ = true;
      header_.clear();
      return;
    }
    const std::size_t body_start = end + 2;
    if (body_start < header_.size()) body.append(header_, body_start, std::string::npos);
    header_.resize(end);
    return;
  }
  scanned_ = header_.size() > 2 ? header_.size() - 2 : 0;
  if (header_.size() > limit_) {
    done_ = too_large_ = true;
    header_.clear();
    header_.shrink_to_fit();
  }
}

void HeaderSplitter::finish() {
  if (done_) return;
  done_ = true;
  if (!header_.empty() && !header_.ends_with("\r\n")) header_ += "\r\n";
}

const char* to_string(Answer a) {
  switch (a) {
    case Answer::None: return "none";
    case Answer::Pass: return "pass";
    case Answer::Fail: return "fail";
    case Answer::Policy: return "policy";
    case Answer::Neutral: return "neutral";
    case Answer::TempError: return "temperror";
    case Answer::PermError: return "permerror";
  }
  return "none";
}

// ---- Verifier ----

struct Verifier::Check {
  Verification v;
  std::optional<Signature> sig;  // nullopt: the field did not parse (v holds the permerror)
  std::string header_digest;
  BodyCanonicalizer canon;
  crypto::Sha256 hash;
  std::string body_digest;
  std::optional<TxtResult> key;

  explicit Check(Canon c, std::optional<std::uint64_t> l) : canon(c, l) {}
};

Verifier::Verifier(VerifyOptions options) : options_(options), splitter_(options.header_limit) {}
Verifier::~Verifier() = default;
Verifier::Verifier(Verifier&&) noexcept = default;
Verifier& Verifier::operator=(Verifier&&) noexcept = default;

void Verifier::start() {
  if (splitter_.too_large()) return;
  const std::vector<HeaderField> fields = split_header(splitter_.header());
  for (const HeaderField& f : fields) {
    if (!is_signature_field(f.name)) continue;
    if (checks_.size() == options_.max_signatures) break;
    const std::size_t colon = f.raw.find(':');
    auto sig = parse_signature(f.raw.substr(colon + 1));
    if (!sig) {
      Check c(Canon::Simple, std::nullopt);
      c.v.result = Answer::PermError;
      c.v.reason = sig.error().message();
      checks_.push_back(std::move(c));
      continue;
    }
    Check c(sig->body_canon, sig->body_length);
    c.v.domain = sig->domain;
    c.v.selector = sig->selector;
    c.v.identity = sig->identity;
    c.v.algorithm = sig->algorithm;
    c.v.b = base64_encode(sig->signature).substr(0, 8);  // RFC 6008 4: at least 8 characters
    // RFC 6376 3.7: the header hash, over the fields h= names and this field without its b=.
    c.header_digest = crypto::sha256(header_hash_input(fields, sig->headers, sig->header_canon, f.raw));
    c.sig = std::move(*sig);
    checks_.push_back(std::move(c));
  }
}

void Verifier::feed(std::string_view octets) {
  if (finished_) return;
  std::string body;
  const bool was_done = splitter_.done();
  splitter_.feed(octets, body);
  if (!was_done && splitter_.done()) start();
  if (body.empty()) return;
  for (Check& c : checks_) {
    if (!c.sig) continue;
    scratch_.clear();
    c.canon.feed(body, scratch_);
    c.hash.update(scratch_);
  }
}

void Verifier::finish() {
  if (finished_) return;
  const bool was_done = splitter_.done();
  splitter_.finish();
  if (!was_done) start();
  for (Check& c : checks_) {
    if (!c.sig) continue;
    scratch_.clear();
    c.canon.finish(scratch_);
    c.hash.update(scratch_);
    c.body_digest = c.hash.finish();
  }
  finished_ = true;
}

bool Verifier::unsigned_message() const { return checks_.empty() && !splitter_.too_large(); }

std::vector<std::pair<std::size_t, std::string>> Verifier::key_queries() const {
  std::vector<std::pair<std::size_t, std::string>> out;
  for (std::size_t i = 0; i < checks_.size(); ++i)
    if (checks_[i].sig && !checks_[i].key) out.emplace_back(i, checks_[i].sig->key_name());
  return out;
}

void Verifier::set_key(std::size_t index, const TxtResult& answer) {
  if (index < checks_.size()) checks_[index].key = answer;
}

std::vector<Verification> Verifier::results() const {
  std::vector<Verification> out;
  if (splitter_.too_large()) {
    Verification v;
    v.result = Answer::PermError;
    v.reason = "header too large to check";
    out.push_back(v);
    return out;
  }
  for (const Check& c : checks_) {
    Verification v = c.v;
    auto fail = [&](Answer a, std::string why) {
      v.result = a;
      v.reason = std::move(why);
      out.push_back(v);
    };
    if (!c.sig) {
      out.push_back(v);
      continue;
    }
    const Signature& sig = *c.sig;
    if (options_.now && sig.expiration && *sig.expiration < options_.now) {
      fail(Answer::Fail, "signature expired");  // RFC 6376 3.5 x=
      continue;
    }
    if (!finished_ || !c.key) {
      fail(Answer::TempError, "no key answer");
      continue;
    }
    // RFC 6376 6.1.2: the key record.
    const TxtResult& txt = *c.key;
    if (txt.status == DnsStatus::TempFail) {
      fail(Answer::TempError, "key lookup failed");
      continue;
    }
    if (txt.status != DnsStatus::Ok || txt.records.empty()) {
      fail(Answer::PermError, "no key");
      continue;
    }
    std::optional<KeyRecord> key;
    std::string key_error;
    for (const std::string& r : txt.records) {  // the first record that parses (3.6.2.2)
      auto k = parse_key_record(r);
      if (k) {
        key = std::move(*k);
        break;
      }
      key_error = k.error().message();
    }
    if (!key) {
      fail(Answer::PermError, "bad key record: " + key_error);
      continue;
    }
    v.testing = key->testing;
    if (Status st = key_fits(*key, sig); !st.ok()) {
      fail(Answer::PermError, st.message());
      continue;
    }
    auto pub = crypto::PublicKey::parse(
        sig.algorithm == Algorithm::Ed25519Sha256 ? crypto::KeyType::Ed25519 : crypto::KeyType::Rsa, key->public_key);
    if (!pub) {
      fail(Answer::PermError, "bad public key");
      continue;
    }
    if (pub->type() == crypto::KeyType::Rsa && pub->bits() < 1024) {
      fail(Answer::PermError, "RSA key shorter than 1024 bits");  // RFC 8301 3.2
      continue;
    }
    // RFC 6376 6.1.3: the body hash first, then the signature.
    if (sig.body_length && c.canon.length() < *sig.body_length) {
      fail(Answer::Fail, "body shorter than l=");
      continue;
    }
    if (!crypto::constant_time_equal(c.body_digest, sig.body_hash)) {
      fail(Answer::Fail, "body hash did not verify");
      continue;
    }
    if (!pub->verify(c.header_digest, sig.signature)) {
      fail(Answer::Fail, "signature did not verify");
      continue;
    }
    v.result = Answer::Pass;
    out.push_back(v);
  }
  return out;
}

// ---- Signer ----

const std::vector<std::string>& signed_fields() {
  // RFC 6376 5.4.1's list, less the ones that relays change (Received, Return-Path).
  static const std::vector<std::string> names = {
      "from", "reply-to", "subject", "date", "to", "cc", "message-id", "in-reply-to", "references",
      "mime-version", "content-type", "content-transfer-encoding", "content-id", "content-description",
      "resent-date", "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-message-id",
      "list-id", "list-help", "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post",
      "list-owner", "list-archive", "sender"};
  return names;
}

const std::vector<std::string>& oversigned_fields() {
  // The fields whose addition changes what a reader sees first (RFC 6376 8.15).
  static const std::vector<std::string> names = {"from", "reply-to", "subject", "date", "to", "cc",
                                                 "message-id", "mime-version", "content-type",
                                                 "content-transfer-encoding", "sender"};
  return names;
}

Signer::Signer(std::size_t header_limit) : splitter_(header_limit) {}

void Signer::feed(std::string_view octets) {
  std::string body;
  splitter_.feed(octets, body);
  if (body.empty()) return;
  scratch_.clear();
  body_.feed(body, scratch_);
  body_hash_.update(scratch_);
}

void Signer::finish() {
  splitter_.finish();
  scratch_.clear();
  body_.finish(scratch_);
  body_hash_.update(scratch_);
  digest_ = body_hash_.finish();
}

std::optional<std::string> Signer::from_domain() const {
  if (splitter_.too_large()) return std::nullopt;
  return author_domain(splitter_.header());
}

std::optional<std::string> author_domain(std::string_view header) {
  std::optional<std::string> domain;
  for (const HeaderField& f : split_header(header)) {
    if (proto::ascii_lower(f.name) != "from") continue;
    if (domain) return std::nullopt;  // two From fields (RFC 5322 3.6 allows one)
    const std::size_t colon = f.raw.find(':');
    auto addresses = parse_address_list(f.raw.substr(colon + 1));
    if (addresses.size() != 1 || addresses[0].kind != Address::Kind::Mailbox || addresses[0].host.empty())
      return std::nullopt;
    domain = proto::ascii_lower(addresses[0].host);
  }
  return domain;
}

namespace {

// Appends "tag=value;" to a field being built, folding before it when the line would pass 78
// columns (RFC 5322 2.1.1). Long values (b=, bh=, h=) fold inside at their own points.
void add_tag(std::string& field, std::size_t& column, std::string_view text) {
  if (column + 1 + text.size() > 78) {
    field += "\r\n\t";
    column = 1;
  } else {
    field += ' ';
    ++column;
  }
  field += text;
  column += text.size();
}

}  // namespace

Result<std::string> Signer::sign(const crypto::PrivateKey& key, const SignOptions& o) const {
  if (splitter_.too_large()) return Status::invalid_argument("the header is too large to sign");
  if (digest_.empty()) return Status::invalid_argument("sign() before finish()");
  const std::vector<HeaderField> fields = split_header(splitter_.header());
  // RFC 6376 5.4: every instance of each signed field present (bottom-up selection picks them
  // all), and the over-signed ones once more.
  std::vector<std::string> names;
  bool has_from = false;
  for (const std::string& n : signed_fields()) {
    std::size_t present = 0;
    for (const HeaderField& f : fields)
      if (proto::ascii_lower(f.name) == n) ++present;
    if (n == "from") has_from = present > 0;
    const bool over = std::find(oversigned_fields().begin(), oversigned_fields().end(), n) != oversigned_fields().end();
    for (std::size_t i = 0; i < present + (over ? 1 : 0); ++i) names.push_back(n);
  }
  if (!has_from) return Status::invalid_argument("a message without From cannot be signed");  // RFC 6376 5.4
  const Algorithm alg = key.type() == crypto::KeyType::Ed25519 ? Algorithm::Ed25519Sha256 : Algorithm::RsaSha256;

  std::string field = "DKIM-Signature:";
  std::size_t column = field.size();
  add_tag(field, column, "v=1;");
  add_tag(field, column, std::string("a=") + to_string(alg) + ";");
  add_tag(field, column, "c=relaxed/relaxed;");
  add_tag(field, column, "d=" + o.domain + ";");
  add_tag(field, column, "s=" + o.selector + ";");
  if (o.timestamp) add_tag(field, column, "t=" + std::to_string(o.timestamp) + ";");
  if (o.timestamp && o.expire_after) add_tag(field, column, "x=" + std::to_string(o.timestamp + o.expire_after) + ";");
  std::string h = "h=";
  for (std::size_t i = 0; i < names.size(); ++i) h += (i ? ":" : "") + names[i];
  // h= folds after a colon (FWS is allowed around the colons, RFC 6376 3.5).
  {
    field += "\r\n\t";
    column = 1;
    std::size_t start = 0;
    const std::string tag = h + ";";
    while (start < tag.size()) {
      std::size_t take = tag.size() - start;
      if (column + take > 78) {
        std::size_t cut = tag.rfind(':', start + (78 - column) - 1);
        take = cut != std::string::npos && cut > start ? cut + 1 - start : take;
      }
      field.append(tag, start, take);
      column += take;
      start += take;
      if (start < tag.size()) {
        field += "\r\n\t";
        column = 1;
      }
    }
  }
  add_tag(field, column, "bh=" + base64_encode(digest_) + ";");
  field += "\r\n\tb=";
  const std::string unsigned_field = field + "\r\n";
  // RFC 6376 3.7: the header hash, with this field as it will be, b= empty.
  const std::string digest = crypto::sha256(header_hash_input(fields, names, Canon::Relaxed, unsigned_field));
  auto sig = key.sign(digest);
  if (!sig) return sig.error();
  const std::string b = base64_encode(*sig);
  for (std::size_t i = 0; i < b.size(); i += 72) {
    if (i) field += "\r\n\t ";
    field += b.substr(i, 72);
  }
  field += "\r\n";
  return field;
}

}  // namespace cmail::mail::dkim
