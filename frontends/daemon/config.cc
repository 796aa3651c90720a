// cmail's configuration file syntax, strictly: see daemon/config.h.
#include "daemon/config.h"

#include <cmail/net/resolver.h>

#include <netdb.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace cmail::daemon::config {

namespace {

struct Line {
  int number;
  std::string directive;
  std::string params;
};

// '#' anywhere starts a comment; surrounding whitespace is dropped
// (docs/compatibility.md#config-syntax).
std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> out;
  int number = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view l = text.substr(pos, nl - pos);
    ++number;
    pos = nl + 1;
    auto hash = l.find('#');
    if (hash != std::string_view::npos) l = l.substr(0, hash);
    auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
    while (!l.empty() && is_space(l.front())) l.remove_prefix(1);
    while (!l.empty() && is_space(l.back())) l.remove_suffix(1);
    if (!l.empty()) {
      std::size_t sp = 0;
      while (sp < l.size() && !is_space(l[sp])) ++sp;
      std::string_view rest = l.substr(sp);
      while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
      out.push_back({number, std::string(l.substr(0, sp)), std::string(rest)});
    }
    if (nl == text.size()) break;
  }
  return out;
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

Status bad(const std::string& name, int line, const std::string& msg) {
  if (line == 0) return Status::invalid_argument(name + ": " + msg);
  return Status::invalid_argument(name + ":" + std::to_string(line) + ": " + msg);
}

// The common directives; returns true when `l` was one of them.
Result<bool> common(Common& c, const Line& l, const std::string& name) {
  auto need = [&]() -> Status {
    if (l.params.empty()) return bad(name, l.number, "'" + l.directive + "' needs an argument");
    return Status();
  };
  if (l.directive == "database") {
    if (Status s = need(); !s.ok()) return s;
    if (!c.database.empty()) return bad(name, l.number, "a second 'database' directive");
    c.database = l.params;
  } else if (l.directive == "verbosity") {
    int v = -1;
    auto [p, ec] = std::from_chars(l.params.data(), l.params.data() + l.params.size(), v);
    if (ec != std::errc() || p != l.params.data() + l.params.size() || v < 0 || v > 4)
      return bad(name, l.number, "verbosity must be a number from 0 to 4");
    c.verbosity = v;
  } else if (l.directive == "logfile") {
    if (Status s = need(); !s.ok()) return s;
    c.logfile = l.params;
  } else if (l.directive == "pidfile") {
    if (Status s = need(); !s.ok()) return s;
    if (!c.pidfile.empty()) return bad(name, l.number, "a second 'pidfile' directive");
    c.pidfile = l.params;
  } else if (l.directive == "user") {
    if (Status s = need(); !s.ok()) return s;
    c.user = l.params;
  } else if (l.directive == "group") {
    if (Status s = need(); !s.ok()) return s;
    c.group = l.params;
  } else {
    return false;
  }
  return true;
}

// `authguard ...` for smtpd and popd (one line at most); returns true when `l` was one.
template <typename Config>
Result<bool> authguard_line(Config& cfg, const Line& l, const std::string& name) {
  if (l.directive != "authguard") return false;
  if (cfg.auth_guard) return bad(name, l.number, "a second 'authguard' directive");
  auto g = parse_authguard(l.params);
  if (!g) return bad(name, l.number, g.error().message());
  cfg.auth_guard = *g;
  return true;
}

// `resolver HOST[:PORT]` of smtpd and dispatchd (repeatable), checked here so that a bad one
// names its line.
Status resolver_line(std::vector<std::string>& resolvers, const Line& l, const std::string& name) {
  if (l.params.empty()) return bad(name, l.number, "'resolver' needs an argument");
  if (!net::parse_name_server(l.params))
    return bad(name, l.number, "resolver '" + l.params + "' is not a name server: HOST[:PORT] with a numeric HOST, or [IPV6]:PORT");
  resolvers.push_back(l.params);
  return Status();
}

}  // namespace

Result<backends::AuthGuardOptions> parse_authguard(std::string_view params) {
  backends::AuthGuardOptions o;
  const auto w = words(params);
  if (w.empty()) return Status::invalid_argument("'authguard' needs 'off' or options");
  if (w.size() == 1 && w[0] == "off") {
    o.enabled = false;
    return o;
  }
  for (const std::string& opt : w) {
    const auto eq = opt.find('=');
    const std::string key = opt.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (eq == std::string::npos || value.empty() || ec != std::errc() || p != value.data() + value.size() ||
        v > 0xFFFFFFFFu)
      return Status::invalid_argument("authguard option '" + opt +
                                      "' must be KEY=NUMBER (valid: off, or delay= maxdelay= ipfailures= "
                                      "userfailures= forget= entries=)");
    if (key == "delay") o.delay = std::chrono::milliseconds(v);
    else if (key == "maxdelay") o.max_delay = std::chrono::milliseconds(v);
    else if (key == "ipfailures") o.address_failures = static_cast<std::uint32_t>(v);
    else if (key == "userfailures") o.user_failures = static_cast<std::uint32_t>(v);
    else if (key == "forget" && v > 0) o.forget = std::chrono::seconds(v);
    else if (key == "entries" && v > 0) o.max_entries = static_cast<std::size_t>(v);
    else if (key == "forget" || key == "entries") return Status::invalid_argument("authguard " + key + " must be positive");
    else
      return Status::invalid_argument("unknown authguard option '" + opt +
                                      "' (valid: off, or delay= maxdelay= ipfailures= userfailures= forget= entries=)");
  }
  if (o.max_delay < o.delay) return Status::invalid_argument("authguard maxdelay must not be below delay");
  return o;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  if (text.empty()) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && p == text.data() + text.size()) {
    if (v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(v);
  }
  std::string name(text);
  servent result{};
  servent* found = nullptr;
  char buf[1024];
  if (getservbyname_r(name.c_str(), "tcp", &result, buf, sizeof buf, &found) == 0 && found)
    return static_cast<std::uint16_t>(ntohs(static_cast<std::uint16_t>(found->s_port)));
  return std::nullopt;
}

namespace {

// "bind HOST PORT [options]" (docs/compatibility.md#daemons-listeners), the part smtpd and popd
// share: fills host, port and line of the listener and returns the words, options from index 2 on.
// Any other directive is unknown to these daemons.
template <typename Listener>
Result<std::vector<std::string>> bind_line(const Line& l, const std::string& name, Listener& b) {
  if (l.directive != "bind") return bad(name, l.number, "unknown directive '" + l.directive + "'");
  auto w = words(l.params);
  if (w.size() < 2) return bad(name, l.number, "usage: bind HOST PORT [options]");
  b.line = l.number;
  b.host = w[0];
  auto port = parse_port(w[1]);
  if (!port) return bad(name, l.number, "'" + w[1] + "' is not a port number or service name");
  b.port = *port;
  return w;
}

}  // namespace

Result<Smtpd> parse_smtpd(std::string_view text, const std::string& name) {
  Smtpd cfg;
  bool auth_checks_seen = false;
  for (const Line& l : split_lines(text)) {
    auto handled = common(cfg.common, l, name);
    if (!handled) return handled.error();
    if (*handled) continue;
    if (l.directive == "resolver") {  // an extension: docs/smtpd.md, docs/smtp.md#spf-on-intake
      if (Status s = resolver_line(cfg.resolvers, l, name); !s.ok()) return s;
      continue;
    }
    if (l.directive == "auth_checks") {  // an extension: docs/smtp.md#spf-on-intake
      if (auth_checks_seen) return bad(name, l.number, "a second 'auth_checks' directive");
      auth_checks_seen = true;
      if (l.params != "on" && l.params != "off") return bad(name, l.number, "auth_checks must be on or off");
      cfg.auth_checks = l.params == "on";
      continue;
    }
    if (l.directive == "maxinflight") {  // an extension: docs/smtpd.md#limits
      std::uint64_t n = 0;
      auto [p, ec] = std::from_chars(l.params.data(), l.params.data() + l.params.size(), n);
      if (l.params.empty() || ec != std::errc() || p != l.params.data() + l.params.size())
        return bad(name, l.number, "maxinflight must be a number of octets (0: no bound)");
      cfg.max_in_flight = n;
      continue;
    }
    auto guard = authguard_line(cfg, l, name);
    if (!guard) return guard.error();
    if (*guard) continue;
    SmtpdListener b;
    auto w = bind_line(l, name, b);
    if (!w) return w.error();
    for (std::size_t i = 2; i < w->size(); ++i) {
      const std::string& opt = (*w)[i];
      auto eq = opt.find('=');
      std::string key = opt.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
      auto need_value = [&]() -> Status {
        if (eq == std::string::npos || value.empty()) return bad(name, l.number, "'" + key + "' needs a value");
        return Status();
      };
      if (key == "announce") {
        if (Status s = need_value(); !s.ok()) return s;
        b.announce = value;
      } else if (key == "size") {
        if (Status s = need_value(); !s.ok()) return s;
        std::uint64_t size = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), size);
        if (ec != std::errc() || p != value.data() + value.size())
          return bad(name, l.number, "size must be a number of octets");
        b.size = size;
      } else if (key == "cert") {
        if (Status s = need_value(); !s.ok()) return s;
        b.cert = value;
      } else if (key == "key") {
        if (Status s = need_value(); !s.ok()) return s;
        b.key = value;
      } else if (key == "ciphers") {
        if (Status s = need_value(); !s.ok()) return s;
        b.ciphers = value;
      } else if (key == "timeout" || key == "maxperip") {
        if (Status s = need_value(); !s.ok()) return s;
        std::uint32_t v = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc() || p != value.data() + value.size() || v == 0)
          return bad(name, l.number, key + " must be a positive number");
        (key == "timeout" ? b.timeout : b.max_per_address) = v;
      } else if (key == "mindatarate") {
        if (Status s = need_value(); !s.ok()) return s;
        std::uint32_t v = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc() || p != value.data() + value.size())
          return bad(name, l.number, "mindatarate must be a number of octets per second (0: none)");
        b.min_data_rate = v;
      } else if (key == "dhparams") {
        // Accepted for compatibility; ECDHE needs no DH parameters
        // (docs/compatibility.md#daemons-tls-options).
        if (Status s = need_value(); !s.ok()) return s;
      } else if (key == "dmarc") {  // an extension: docs/auth.md#policy
        if (value != "report" && value != "enforce")
          return bad(name, l.number, "dmarc= must be report or enforce");
        b.dmarc_enforce = value == "enforce";
      } else if (key == "tlsonly" && eq == std::string::npos) {
        b.tlsonly = true;
      } else if (key == "strict" && eq == std::string::npos) {
        b.strict = true;  // docs/compatibility.md#routing-paths
      } else if (key == "auth") {
        b.auth = true;
        if (eq != std::string::npos) {
          std::size_t start = 0;
          while (start <= value.size()) {
            std::size_t comma = value.find(',', start);
            if (comma == std::string::npos) comma = value.size();
            std::string sub = value.substr(start, comma - start);
            if (sub == "tlsonly") b.auth_tlsonly = true;
            else if (sub == "strict") b.auth_strict = true;
            else if (sub == "private") b.auth_private = true;
            else if (sub.starts_with("fixed@") && sub.size() > 6) b.fixed_user = sub.substr(6), b.auth_strict = true;
            else return bad(name, l.number, "unknown auth option '" + sub + "' (valid: tlsonly, strict, private, fixed@USER)");
            if (comma == value.size()) break;
            start = comma + 1;
          }
        }
      } else {
        return bad(name, l.number, "unknown bind option '" + opt +
                                       "' (valid: announce= size= cert= key= ciphers= dhparams= tlsonly strict auth[=...] timeout= maxperip= mindatarate= dmarc=)");
      }
    }
    if (b.cert.empty() != b.key.empty() || (b.tlsonly && b.cert.empty()))
      return bad(name, l.number, "TLS needs both cert= and key=");
    cfg.listeners.push_back(std::move(b));
  }
  if (cfg.listeners.empty()) return bad(name, 0, "no 'bind' directive: nothing to listen on");
  if (cfg.common.database.empty()) return bad(name, 0, "no 'database' directive");
  return cfg;
}

namespace {

Result<std::string> read_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
bool number(const std::string& text, T& out) {
  T v{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return false;
  out = v;
  return true;
}

}  // namespace

Result<Smtpd> load_smtpd(const std::string& path) {
  auto text = read_config(path);
  if (!text) return text.error();
  return parse_smtpd(*text, path);
}

Result<Dispatchd> parse_dispatchd(std::string_view text, const std::string& name, bool database_required) {
  Dispatchd cfg;
  for (const Line& l : split_lines(text)) {
    auto handled = common(cfg.common, l, name);
    if (!handled) return handled.error();
    if (*handled) continue;
    const std::string& d = l.directive;
    const std::string& v = l.params;
    if (v.empty()) return bad(name, l.number, "'" + d + "' needs an argument");
    auto seconds = [&](std::int64_t& out, bool zero_ok) -> Status {
      std::int64_t n = 0;
      if (!number(v, n) || n < 0 || (!zero_ok && n == 0)) return bad(name, l.number, d + " must be a number of seconds");
      out = n;
      return Status();
    };
    auto count = [&](std::uint32_t& out, bool zero_ok) -> Status {
      std::uint32_t n = 0;
      if (!number(v, n) || (!zero_ok && n == 0)) return bad(name, l.number, d + " must be a " + (zero_ok ? "" : "positive ") + "number");
      out = n;
      return Status();
    };
    Status st;
    if (d == "announce") {
      cfg.announce = v;
    } else if (d == "portprio") {
      auto p = mail::parse_portprio(v);
      if (!p) return bad(name, l.number, p.error().message());
      // A later line replaces the list (docs/compatibility.md#dispatchd-portprio).
      cfg.portprio = *p;
    } else if (d == "interval") {
      st = count(cfg.interval, false);
    } else if (d == "retries") {
      st = seconds(cfg.retry.retries, false);
      if (!st.ok()) st = bad(name, l.number, "retries must be a positive number");
    } else if (d == "retryinterval") {
      st = seconds(cfg.retry.interval, false);
    } else if (d == "maxretryinterval") {
      st = seconds(cfg.retry.max_interval, false);
    } else if (d == "maxage") {
      st = seconds(cfg.retry.max_age, true);
    } else if (d == "ratelimit") {
      st = count(cfg.ratelimit, true);
    } else if (d == "tls_padding") {
      st = count(cfg.tls_padding, true);
    } else if (d == "tls_trustfile") {
      cfg.tls_trustfile = v;
    } else if (d == "tls_verify") {
      auto m = mail::parse_tls_verify(v);
      if (!m) return bad(name, l.number, "tls_verify must be never, credentials, handoff or always");
      cfg.tls_verify = *m;
    } else if (d == "plaintext_auth") {
      if (v != "yes" && v != "no") return bad(name, l.number, "plaintext_auth must be yes or no");
      cfg.plaintext_auth = v == "yes";
    } else if (d == "mta_sts") {
      if (v != "on" && v != "off") return bad(name, l.number, "mta_sts must be on or off");
      cfg.mta_sts = v == "on";
    } else if (d == "mta_sts_port") {  // tests only (docs/tls-policy.md#mta-sts)
      std::uint32_t port = 0;
      if (!number(v, port) || port == 0 || port > 65535) return bad(name, l.number, "mta_sts_port must be a port number");
      cfg.mta_sts_port = static_cast<std::uint16_t>(port);
    } else if (d == "bounce_from") {
      cfg.bounce_from = v;
    } else if (d == "bounce_copy") {
      // The lists accumulate (docs/compatibility.md#dispatchd-configuration).
      for (auto& a : words(v)) cfg.bounce_copy.push_back(a);
    } else if (d == "bind") {
      cfg.bind = v;
    } else if (d == "resolver") {
      st = resolver_line(cfg.resolvers, l, name);
    } else if (d == "dnssec") {  // an extension: docs/tls-policy.md#dane
      if (v != "on" && v != "off") return bad(name, l.number, "dnssec must be on or off");
      cfg.dnssec = v == "on";
    } else if (d == "maxconnections") {
      st = count(cfg.max_connections, false);
    } else if (d == "maxperdestination") {
      st = count(cfg.max_per_destination, false);
    } else if (d == "timeout") {
      st = count(cfg.timeout, false);
    } else {
      return bad(name, l.number, "unknown directive '" + d + "'");
    }
    if (!st.ok()) return st;
  }
  if (database_required && cfg.common.database.empty()) return bad(name, 0, "no 'database' directive");
  return cfg;
}

Result<Dispatchd> load_dispatchd(const std::string& path, bool database_required) {
  auto text = read_config(path);
  if (!text) return text.error();
  return parse_dispatchd(*text, path, database_required);
}

namespace {

// cmail-popd's syntax, which cmail-imapd takes too (docs/imapd.md#configuration); `announce`
// is the daemon's default greeting name.
Result<Popd> parse_mail_access(std::string_view text, const std::string& name, const std::string& announce,
                               bool imap) {
  Popd cfg;
  if (imap) cfg.max_per_user = kImapMaxPerUser;
  bool per_user_seen = false;
  for (const Line& l : split_lines(text)) {
    auto handled = common(cfg.common, l, name);
    if (!handled) return handled.error();
    if (*handled) continue;
    auto guard = authguard_line(cfg, l, name);
    if (!guard) return guard.error();
    if (*guard) continue;
    if (imap && l.directive == "maxperuser") {
      if (per_user_seen) return bad(name, l.number, "a second 'maxperuser' directive");
      per_user_seen = true;
      if (!number(l.params, cfg.max_per_user)) return bad(name, l.number, "maxperuser must be a number (0: no limit)");
      continue;
    }
    PopdListener b;
    b.announce = announce;
    auto w = bind_line(l, name, b);
    if (!w) return w.error();
    for (std::size_t i = 2; i < w->size(); ++i) {
      const std::string& opt = (*w)[i];
      auto eq = opt.find('=');
      std::string key = opt.substr(0, eq);
      std::string value = eq == std::string::npos ? "" : opt.substr(eq + 1);
      const bool flag = eq == std::string::npos;
      if (!flag && value.empty()) return bad(name, l.number, "'" + key + "' needs a value");
      if (key == "announce" && !flag) {
        b.announce = value;
      } else if (key == "cert" && !flag) {
        b.cert = value;
      } else if (key == "key" && !flag) {
        b.key = value;
      } else if (key == "ciphers" && !flag) {
        b.ciphers = value;
      } else if (key == "dhparams" && !flag) {
        // Accepted for compatibility; ECDHE needs no DH parameters (docs/popd.md).
      } else if ((key == "timeout" || key == "maxperip") && !flag) {
        std::uint32_t v = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        if (ec != std::errc() || p != value.data() + value.size() || v == 0)
          return bad(name, l.number, key + " must be a positive number");
        (key == "timeout" ? b.timeout : b.max_per_address) = v;
      } else if (key == "tlsonly" && flag) {
        b.tlsonly = true;
      } else if (key == "tlsrequire" && flag) {
        b.tlsrequire = true;
      } else {
        return bad(name, l.number, "unknown bind option '" + opt +
                                       "' (valid: announce= cert= key= ciphers= dhparams= tlsonly tlsrequire timeout= maxperip=)");
      }
    }
    if (b.cert.empty() != b.key.empty() || (b.tlsonly && b.cert.empty()))
      return bad(name, l.number, "TLS needs both cert= and key=");
    if (b.tlsrequire && b.cert.empty())
      return bad(name, l.number, "tlsrequire needs cert= and key= (nobody could log in without TLS)");
    cfg.listeners.push_back(std::move(b));
  }
  if (cfg.listeners.empty()) return bad(name, 0, "no 'bind' directive: nothing to listen on");
  if (cfg.common.database.empty()) return bad(name, 0, "no 'database' directive");
  return cfg;
}

}  // namespace

Result<Popd> parse_popd(std::string_view text, const std::string& name) {
  return parse_mail_access(text, name, "cmail-popd", false);
}

Result<Popd> load_popd(const std::string& path) {
  auto text = read_config(path);
  if (!text) return text.error();
  return parse_popd(*text, path);
}

Result<Imapd> parse_imapd(std::string_view text, const std::string& name) {
  return parse_mail_access(text, name, "cmail-imapd", true);
}

Result<Imapd> load_imapd(const std::string& path) {
  auto text = read_config(path);
  if (!text) return text.error();
  return parse_imapd(*text, path);
}

}  // namespace cmail::daemon::config
