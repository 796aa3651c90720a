// SPF, DKIM and DMARC of one incoming message, over the Resolver; see inbound_checks.h.
#include <cmail/backends/inbound_checks.h>

#include <cmail/backends/auth_guard.h>
#include <cmail/mail/structure.h>
#include <cmail/proto/ascii.h>

#include <sys/random.h>

#include <algorithm>
#include <ctime>

namespace cmail::backends {

using Clock = std::chrono::steady_clock;

const mail::dmarc::PublicSuffixList& system_public_suffixes() {
  static const mail::dmarc::PublicSuffixList list = [] {
    auto l = mail::dmarc::PublicSuffixList::load();
    return l ? std::move(*l) : mail::dmarc::PublicSuffixList::parse("");
  }();
  return list;
}

const char* to_string(InboundResult::Dmarc d) {
  switch (d) {
    case InboundResult::Dmarc::None: return "none";
    case InboundResult::Dmarc::Pass: return "pass";
    case InboundResult::Dmarc::Fail: return "fail";
    case InboundResult::Dmarc::TempError: return "temperror";
    case InboundResult::Dmarc::PermError: return "permerror";
  }
  return "none";
}

namespace {

// RFC 8601 2.2 pvalue: a dot-atom-like value as it is, anything else a quoted-string.
std::string pvalue(std::string_view value) {
  const bool plain = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return proto::is_alnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~.@").find(c) != std::string_view::npos;
  });
  if (plain) return std::string(value);
  std::string q = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') q += '\\';
    if (c != '\r' && c != '\n') q += c;
  }
  return q + "\"";
}

std::string quoted(std::string_view text) {
  std::string q = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') q += '\\';
    if (c != '\r' && c != '\n') q += c;
  }
  return q + "\"";
}

}  // namespace

std::string InboundResult::header(std::string_view authserv_id) const {
  // RFC 8601 2.2: authserv-id, then "; method=result reason ptype.property=value" for each.
  std::string h = "Authentication-Results: " + std::string(authserv_id);
  if (spf)
    h += ";\r\n\tspf=" + std::string(mail::spf::to_string(spf->result)) + " " + spf_property + "=" +
         pvalue(spf_identity);
  for (const mail::dkim::Verification& v : dkim) {
    h += ";\r\n\tdkim=" + std::string(mail::dkim::to_string(v.result));
    if (!v.reason.empty() && v.result != mail::dkim::Answer::Pass) h += " reason=" + quoted(v.reason);
    if (!v.domain.empty()) {
      // RFC 6008 (header.b), RFC 8601 2.7.1 (header.d, header.i), header.s and header.a (IANA).
      h += "\r\n\t header.d=" + pvalue(v.domain) + " header.s=" + pvalue(v.selector) + " header.a=" +
           mail::dkim::to_string(v.algorithm) + " header.b=" + pvalue(v.b);
    }
  }
  if (dkim.empty() && spf) h += ";\r\n\tdkim=none";
  if (!from_domain.empty() || dmarc != Dmarc::None) {
    // RFC 7489 11.2: method dmarc, ptype header.from.
    h += ";\r\n\tdmarc=" + std::string(to_string(dmarc));
    if (dmarc == Dmarc::Fail) h += std::string(" (p=") + mail::dmarc::to_string(policy) + ")";
    if (!from_domain.empty()) h += " header.from=" + pvalue(from_domain);
  }
  if (!spf && dkim.empty() && from_domain.empty()) h += "; none";  // RFC 8601 2.2: no checks
  return h + "\r\n";
}

std::string InboundResult::summary() const {
  std::string s = "spf=";
  s += spf ? mail::spf::to_string(spf->result) : "none";
  s += " dkim=";
  if (dkim.empty()) s += "none";
  for (std::size_t i = 0; i < dkim.size(); ++i) s += (i ? "," : "") + std::string(mail::dkim::to_string(dkim[i].result));
  s += std::string(" dmarc=") + to_string(dmarc);
  return s;
}

struct InboundChecks::State {
  InboundCheckOptions options;
  proto::Executor executor;
  InboundResult result;
  // SPF.
  bool spf_running = false;
  Clock::time_point spf_deadline;
  std::string spf_domain;  // the domain SPF checked (for DMARC alignment)
  // DKIM.
  mail::dkim::Verifier verifier;
  std::size_t keys_pending = 0;
  Clock::time_point lookups_deadline;
  bool header_seen = false;
  // DMARC.
  bool dmarc_running = false;
  std::optional<mail::dmarc::Discovery> discovery;
  // The end of the data.
  bool finished = false;
  bool timer_set = false;
  std::function<void()> done;

  bool outstanding() const { return spf_running || keys_pending > 0 || dmarc_running; }
};

InboundChecks::InboundChecks(InboundCheckOptions options, proto::Executor executor)
    : state_(std::make_shared<State>()) {
  state_->options = std::move(options);
  state_->executor = std::move(executor);
  mail::dkim::VerifyOptions vo;
  vo.now = static_cast<std::int64_t>(std::time(nullptr));
  state_->verifier = mail::dkim::Verifier(vo);
}

InboundChecks::~InboundChecks() = default;  // callbacks hold weak references: they go quiet

void InboundChecks::start(std::string_view client_ip, std::string_view helo, const std::string& from_address,
                          const std::string& from_domain) {
  auto ip = mail::spf::parse_ip(client_ip);
  if (!ip) return;  // not an IP client (a test's pipe): nothing to check
  State& s = *state_;
  // RFC 7208 2.4: the MAIL FROM identity; with a null reverse-path, the HELO identity, as
  // postmaster@<helo>.
  const bool null_path = from_address.empty() || from_domain.empty();
  s.result.spf_property = null_path ? "smtp.helo" : "smtp.mailfrom";
  s.result.spf_identity = null_path ? std::string(helo) : from_address;
  s.spf_domain = null_path ? std::string(helo) : from_domain;
  const std::string sender = null_path ? "postmaster@" + std::string(helo) : from_address;
  s.spf_running = true;
  s.spf_deadline = Clock::now() + s.options.timeout;
  std::weak_ptr<State> weak = state_;
  mail::spf::check_host(*s.options.resolver, *ip, s.spf_domain, sender, std::string(helo),
                        [weak](mail::spf::Outcome o) {
                          auto st = weak.lock();
                          if (!st || !st->spf_running) return;
                          st->spf_running = false;
                          st->result.spf = std::move(o);
                          ready(*st);
                        });
}

void InboundChecks::feed(std::string_view octets) {
  State& s = *state_;
  s.verifier.feed(octets);
  if (!s.header_seen && s.verifier.header_done()) header_complete();
}

void InboundChecks::header_complete() {
  State& s = *state_;
  s.header_seen = true;
  s.lookups_deadline = Clock::now() + s.options.timeout;
  std::weak_ptr<State> weak = state_;
  // RFC 6376 6.1.2: each signature's key record.
  const auto queries = s.verifier.key_queries();
  s.keys_pending = queries.size();
  for (const auto& [index, name] : queries) {
    s.options.resolver->txt(name, [weak, index = index](mail::TxtResult r) {
      auto st = weak.lock();
      if (!st || st->keys_pending == 0) return;
      st->verifier.set_key(index, r);
      --st->keys_pending;
      ready(*st);
    });
  }
  // RFC 7489 6.6.1: the From domain's policy; a message with no From, or several addresses,
  // has no DMARC result.
  auto from = mail::dkim::author_domain(s.verifier.header());
  if (!from) return;
  s.result.from_domain = *from;
  s.dmarc_running = true;
  const auto& psl = s.options.psl ? *s.options.psl : system_public_suffixes();
  mail::dmarc::discover(*s.options.resolver, psl, *from, [weak](mail::dmarc::Discovery d) {
    auto st = weak.lock();
    if (!st || !st->dmarc_running) return;
    st->dmarc_running = false;
    st->discovery = std::move(d);
    ready(*st);
  });
}

void InboundChecks::ready(State& s) {
  if (!s.finished || s.outstanding() || !s.done) return;
  auto done = std::move(s.done);
  s.done = nullptr;
  done();
}

void InboundChecks::finish(std::function<void()> done) {
  State& s = *state_;
  s.verifier.finish();
  if (!s.header_seen) header_complete();
  s.finished = true;
  s.done = std::move(done);
  if (!s.outstanding()) return ready(s);
  // Wait no longer than the latest deadline still running.
  Clock::time_point until = Clock::now();
  if (s.spf_running) until = std::max(until, s.spf_deadline);
  if (s.keys_pending || s.dmarc_running) until = std::max(until, s.lookups_deadline);
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  std::weak_ptr<State> weak = state_;
  run_after(s.executor, std::max(wait, std::chrono::milliseconds(0)), [weak] {
    auto st = weak.lock();
    if (!st) return;
    if (st->spf_running) {
      st->spf_running = false;
      st->result.spf = mail::spf::Outcome{mail::spf::Answer::TempError, "", "no answer in time"};
    }
    st->keys_pending = 0;  // the Verifier calls the keys not set temperror
    if (st->dmarc_running) {
      st->dmarc_running = false;
      mail::dmarc::Discovery d;
      d.kind = mail::dmarc::Discovery::Kind::TempError;
      d.error = "no answer in time";
      st->discovery = d;
    }
    ready(*st);
  });
}

InboundResult InboundChecks::result() const {
  const State& s = *state_;
  InboundResult r = s.result;
  r.dkim = s.verifier.results();
  if (!s.discovery) return r;
  using Kind = mail::dmarc::Discovery::Kind;
  if (s.discovery->kind == Kind::TempError) {
    r.dmarc = InboundResult::Dmarc::TempError;
    return r;
  }
  if (s.discovery->kind == Kind::None) return r;
  // RFC 7489 4.2, 6.6.2: an aligned SPF pass or an aligned DKIM pass.
  mail::dmarc::Evidence e;
  e.from_domain = r.from_domain;
  e.spf_pass = r.spf && r.spf->result == mail::spf::Answer::Pass;
  e.spf_domain = s.spf_domain;
  for (const auto& v : r.dkim)
    if (v.result == mail::dkim::Answer::Pass) e.dkim_pass.push_back(v.domain);
  const auto& psl = s.options.psl ? *s.options.psl : system_public_suffixes();
  int roll = 0;
  if (s.options.roll) {
    roll = s.options.roll();
  } else {
    unsigned char b = 0;
    if (getrandom(&b, 1, 0) == 1) roll = b % 100;
  }
  const auto o = mail::dmarc::evaluate(s.discovery->record, s.discovery->domain, e, psl, roll);
  r.dmarc = o.pass ? InboundResult::Dmarc::Pass : InboundResult::Dmarc::Fail;
  r.policy = o.policy;
  r.policy_applies = !o.pass && o.applies;
  return r;
}

}  // namespace cmail::backends
