// cmail-admin dkim and dmarc. dkim: DKIM signing keys per domain and selector (table dkim_keys, schema version
// 14; docs/auth.md#dkim-signing). The original cmail had no DKIM. Private keys are made here,
// stored in the master database and never printed; what is printed is the TXT record to
// publish (RFC 6376 3.6.1) and, with `check`, whether the one in the DNS matches. dmarc: the
// auth_policy table, what intake does with mail failing DMARC (docs/auth.md#policy).
#include "commands.h"

#include <cmail/base64.h>
#include <cmail/crypto/keys.h>
#include <cmail/mail/dkim.h>
#include <cmail/net/resolver.h>
#include <cmail/net/runtime.h>
#include <cmail/proto/ascii.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace cmail::admin {

namespace {

// "v=DKIM1; k=...; p=..." of a stored key.
Result<std::string> record_of(const store::DkimKey& k) {
  auto key = crypto::PrivateKey::parse(k.private_key);
  if (!key) return key.error();
  return std::string("v=DKIM1; k=") + crypto::to_string(key->type()) + "; p=" + base64_encode(key->public_key().bytes());
}

// The record as a zone file line; TXT character-strings hold at most 255 octets (RFC 1035
// 3.3.14), so longer records are split into several, which receivers join (RFC 6376 3.6.2.2).
void print_record(const store::DkimKey& k, const std::string& record) {
  std::printf("%s._domainkey.%s. IN TXT (", k.selector.c_str(), k.domain.c_str());
  for (std::size_t i = 0; i < record.size(); i += 250) std::printf(" \"%s\"", record.substr(i, 250).c_str());
  std::printf(" )\n");
}

// A DNS label: letters, digits, hyphens, not at either end (RFC 1035 2.3.1); a selector may
// have several (RFC 6376 3.1).
bool domain_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!proto::is_alnum(c) && c != '-' && c != '_') return false;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

std::string default_selector(crypto::KeyType t) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%04d%02d", t == crypto::KeyType::Ed25519 ? "ed25519" : "rsa", tm.tm_year + 1900,
                tm.tm_mon + 1);
  return buf;
}

// Looks up each key's record through the resolver and compares p=. 0 when all match.
int check(Context& ctx, const std::vector<store::DkimKey>& keys, const std::vector<std::string>& servers) {
  net::Runtime runtime;
  net::ResolverOptions ro;
  ro.servers = servers;
  auto resolver = net::make_resolver(runtime, ro);
  if (!resolver) return ctx.fail(kExitInvalid, "resolver: " + resolver.error().message());
  int pending = static_cast<int>(keys.size());
  int bad = 0;
  std::vector<std::string> lines(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const store::DkimKey& k = keys[i];
    auto want = record_of(k);
    if (!want) {
      lines[i] = k.selector + ": the stored key does not parse: " + want.error().message();
      ++bad;
      if (--pending == 0) runtime.shutdown(std::chrono::milliseconds(0));
      continue;
    }
    auto mine = mail::dkim::parse_key_record(*want);
    (*resolver)->txt(k.selector + "._domainkey." + k.domain, [&, i, mine = *mine](mail::TxtResult r) {
      const store::DkimKey& key = keys[i];
      const std::string name = key.selector + "._domainkey." + key.domain;
      if (r.status == mail::DnsStatus::TempFail) {
        lines[i] = name + ": lookup failed (" + r.error + ")";
        ++bad;
      } else if (r.status != mail::DnsStatus::Ok || r.records.empty()) {
        lines[i] = name + ": no TXT record: publish it (cmail-admin dkim record " + key.domain + " " + key.selector + ")";
        ++bad;
      } else {
        bool match = false, revoked = false;
        for (const std::string& text : r.records) {
          auto published = mail::dkim::parse_key_record(text);
          if (!published) continue;
          if (published->public_key.empty()) revoked = true;
          if (published->key_type == mine.key_type && published->public_key == mine.public_key) match = true;
        }
        if (match) {
          lines[i] = name + ": ok";
        } else {
          lines[i] = name + (revoked ? ": the published record is revoked (p= empty)" : ": the published key differs");
          ++bad;
        }
      }
      if (--pending == 0) runtime.shutdown(std::chrono::milliseconds(0));
    });
  }
  if (pending > 0) runtime.run();
  resolver->reset();
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  return bad ? kExitNotFound : kExitOk;
}

}  // namespace

void usage_dkim() {
  std::printf(
      "cmail-admin dkim - Manage DKIM signing keys\n"
      "Usage: cmail-admin [-d DBPATH] dkim COMMAND [ARGS]\n"
      "  generate DOMAIN [--selector S] [--algorithm rsa|ed25519] [--bits N]\n"
      "      make a key (RSA 2048 bits by default), store it, print the TXT record to publish\n"
      "  list [DOMAIN-PATTERN]\n"
      "  record DOMAIN SELECTOR       print the TXT record again\n"
      "  delete DOMAIN SELECTOR\n"
      "  check DOMAIN [--resolver HOST[:PORT]]...\n"
      "      look up each selector's record and say whether it matches the stored key\n");
}

int run_dkim(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  // Options after the positional arguments.
  std::vector<std::string> pos;
  std::string selector, algorithm = "rsa";
  unsigned bits = 2048;
  std::vector<std::string> servers;
  for (std::size_t i = 1; i < a.size(); ++i) {
    const std::string& w = a[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= a.size()) {
        ctx.fail(kExitUsage, std::string(name) + " needs a value");
        return std::nullopt;
      }
      return a[++i];
    };
    if (w == "--selector" || w == "--algorithm" || w == "--bits" || w == "--resolver") {
      auto v = value(w.c_str());
      if (!v) return kExitUsage;
      if (w == "--selector") selector = *v;
      else if (w == "--algorithm") algorithm = *v;
      else if (w == "--resolver") servers.push_back(*v);
      else {
        char* end = nullptr;
        unsigned long n = std::strtoul(v->c_str(), &end, 10);
        if (*end || n < 1024 || n > 4096) return ctx.fail(kExitUsage, "--bits must be 1024 to 4096");
        bits = static_cast<unsigned>(n);
      }
    } else if (w.starts_with("--")) {
      return ctx.fail(kExitUsage, "unknown option " + w);
    } else {
      pos.push_back(w);
    }
  }
  const std::size_t want = cmd == "generate" || cmd == "check" ? 1 : cmd == "list" ? 0 : 2;
  const bool known = cmd == "generate" || cmd == "list" || cmd == "record" || cmd == "delete" || cmd == "check";
  if (!known || (cmd == "list" ? pos.size() > 1 : pos.size() != want)) {
    ctx.fail(kExitUsage, known ? "wrong arguments for " + cmd : "unknown command '" + cmd + "'");
    usage_dkim();
    return kExitUsage;
  }
  if (!pos.empty() && !domain_name(pos[0]) && cmd != "list") return ctx.fail(kExitInvalid, "'" + pos[0] + "' is not a domain name");
  if (algorithm != "rsa" && algorithm != "ed25519") return ctx.fail(kExitUsage, "--algorithm is rsa or ed25519");
  const std::string domain = pos.empty() ? "%" : proto::ascii_lower(pos[0]);

  int code = 0;
  auto store = ctx.open(cmd == "list" || cmd == "record" || cmd == "check", code);
  if (!store) return code;
  store::Directory& d = store->directory();

  if (cmd == "generate") {
    const crypto::KeyType type = algorithm == "ed25519" ? crypto::KeyType::Ed25519 : crypto::KeyType::Rsa;
    if (selector.empty()) selector = default_selector(type);
    if (!domain_name(selector)) return ctx.fail(kExitInvalid, "'" + selector + "' is not a selector (RFC 6376 3.1)");
    auto key = crypto::PrivateKey::generate(type, bits);
    if (!key) return ctx.fail(key.error());
    store::DkimKey k{domain, selector, type == crypto::KeyType::Ed25519 ? "ed25519-sha256" : "rsa-sha256", key->pem(),
                     static_cast<std::int64_t>(std::time(nullptr))};
    Status st = d.add_dkim_key(k);
    if (st.code() == Status::Code::AlreadyExists) return ctx.fail(kExitConstraint, st.message());
    if (!st.ok()) return ctx.fail(st);
    auto rec = record_of(k);
    if (!rec) return ctx.fail(rec.error());
    std::printf("Publish this TXT record, then mail from %s is signed with selector %s:\n", domain.c_str(),
                selector.c_str());
    print_record(k, *rec);
    return kExitOk;
  }
  if (cmd == "delete") {
    Status st = d.delete_dkim_key(domain, pos[1]);
    if (st.is_not_found()) return ctx.fail(kExitNotFound, st.message());
    return st.ok() ? kExitOk : ctx.fail(st);
  }
  auto keys = cmd == "list" ? d.list_dkim_keys(domain) : d.dkim_keys(domain);
  if (!keys) return ctx.fail(keys.error());
  if (cmd == "list") {
    print_row({30, 20, 15, 20}, {"Domain", "Selector", "Algorithm", "Created (UTC)"});
    for (const store::DkimKey& k : *keys) {
      std::time_t t = static_cast<std::time_t>(k.created);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char when[32];
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
      print_row({30, 20, 15, 20}, {k.domain, k.selector, k.algorithm, when});
    }
    return kExitOk;
  }
  if (cmd == "record") {
    for (const store::DkimKey& k : *keys) {
      if (k.selector != pos[1]) continue;
      auto rec = record_of(k);
      if (!rec) return ctx.fail(rec.error());
      print_record(k, *rec);
      return kExitOk;
    }
    return ctx.fail(kExitNotFound, "'" + domain + "' has no DKIM key with selector '" + pos[1] + "'");
  }
  // check
  if (keys->empty()) return ctx.fail(kExitNotFound, "'" + domain + "' has no DKIM keys");
  return check(ctx, *keys, servers);
}

void usage_dmarc() {
  std::printf(
      "cmail-admin dmarc - What intake does with mail that fails DMARC, per recipient domain\n"
      "Usage: cmail-admin [-d DBPATH] dmarc COMMAND [ARGS]\n"
      "  list\n"
      "  set DOMAIN|* report|enforce   report: Authentication-Results only (the default);\n"
      "                                enforce: p=reject refused, p=quarantine into Junk\n"
      "  delete DOMAIN|*\n");
}

int run_dmarc(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  const bool ok = (cmd == "list" && a.size() == 1) || (cmd == "set" && a.size() == 3) || (cmd == "delete" && a.size() == 2);
  if (!ok) {
    ctx.fail(kExitUsage, "invalid command or arguments: " + cmd);
    usage_dmarc();
    return kExitUsage;
  }
  if (cmd != "list" && a[1] != "*" && !domain_name(a[1])) return ctx.fail(kExitInvalid, "'" + a[1] + "' is not a domain name");
  if (cmd == "set" && a[2] != "report" && a[2] != "enforce") return ctx.fail(kExitInvalid, "the policy is report or enforce");
  int code = 0;
  auto store = ctx.open(cmd == "list", code);
  if (!store) return code;
  store::Directory& d = store->directory();
  if (cmd == "list") {
    auto rows = d.list_auth_policies();
    if (!rows) return ctx.fail(rows.error());
    print_row({30, 10}, {"Domain", "Policy"});
    for (const auto& [domain, policy] : *rows)
      print_row({30, 10}, {domain, policy == store::AuthPolicy::Enforce ? "enforce" : "report"});
    return kExitOk;
  }
  Status st = cmd == "set" ? d.set_auth_policy(a[1], a[2] == "enforce" ? store::AuthPolicy::Enforce : store::AuthPolicy::Report)
                           : d.set_auth_policy(a[1], std::nullopt);
  if (st.is_not_found()) return ctx.fail(kExitNotFound, st.message());
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
