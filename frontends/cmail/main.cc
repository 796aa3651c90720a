// cmail serve: every module in one process, with a zero-config default (README quick start).
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/dispatch_service.h"
#include "daemon/imap_service.h"
#include "daemon/pop3_service.h"
#include "daemon/smtp_service.h"

#include <cmail/net/dispatcher.h>
#include <cmail/net/resolver.h>
#include <cmail/net/runtime.h>
#include <cmail/store/store.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

using namespace cmail;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"cmail: an embeddable mail server"};
  app.require_subcommand(1);
  auto* serve = app.add_subcommand("serve", "run the mail server: SMTP intake and submission, outbound delivery, POP3, IMAP");
  std::string data = "cmail-data", config_file, host = "127.0.0.1", hostname = "localhost";
  std::uint16_t smtp_port = 2525, submission_port = 2587, smtps_port = 2465;
  std::uint16_t pop3_port = 2110, pop3s_port = 2995;
  std::uint16_t imap_port = 2143, imaps_port = 2993;
  std::string popd_config_file, imapd_config_file;
  int verbosity = 1;
  std::vector<std::string> resolvers;
  std::string dispatchd_config;
  std::string authguard;
  bool no_auth_checks = false;
  serve->add_option("--data", data, "data directory: master.db3, cert.pem, key.pem (created if missing)");
  serve->add_option("--config", config_file, "a cmail-smtpd config file instead of the defaults");
  serve->add_option("--host", host, "address to listen on");
  serve->add_option("--hostname", hostname, "name in greetings, Received headers and the certificate");
  serve->add_option("--smtp-port", smtp_port, "inbound SMTP with STARTTLS (0 = any free port)");
  serve->add_option("--submission-port", submission_port, "submission: STARTTLS, AUTH required");
  serve->add_option("--smtps-port", smtps_port, "submission over implicit TLS, AUTH required");
  serve->add_option("--pop3-port", pop3_port, "POP3 with STLS, login only inside TLS");
  serve->add_option("--pop3s-port", pop3s_port, "POP3 over implicit TLS");
  serve->add_option("--imap-port", imap_port, "IMAP with STARTTLS, login only inside TLS");
  serve->add_option("--imaps-port", imaps_port, "IMAP over implicit TLS");
  serve->add_option("--popd-config", popd_config_file, "a cmail-popd config file (with --config: POP3 only if given)");
  serve->add_option("--imapd-config", imapd_config_file, "a cmail-imapd config file (with --config: IMAP only if given)");
  serve->add_option("--resolver", resolvers,
                    "DNS server HOST[:PORT] for intake's SPF checks and outbound delivery (repeatable; default: the "
                    "--config and --dispatchd-config files' resolver lines, else the system's)");
  serve->add_flag("--no-auth-checks", no_auth_checks,
                  "no SPF checks (nor Authentication-Results) of inbound mail, as 'auth_checks off' in --config");
  serve->add_option("--dispatchd-config", dispatchd_config, "a cmail-dispatchd config file for outbound delivery");
  serve->add_option("--authguard", authguard,
                    "failed log-in penalties: 'off' or 'delay=MS maxdelay=MS ipfailures=N userfailures=N forget=S "
                    "entries=N' (default: the --config, --popd-config or --imapd-config file's authguard line, else the "
                    "defaults)");
  serve->add_option("-v,--verbosity", verbosity, "0 errors and warnings, 1 info (connections, messages), 3 debug");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  daemon::Logger logger(verbosity, "");
  daemon::return_large_blocks();
  daemon::config::Smtpd cfg;
  daemon::config::Popd popd;
  daemon::config::Imapd imapd;
  std::string popd_config_name = "defaults", imapd_config_name = "defaults";
  if (!popd_config_file.empty()) {
    auto loaded = daemon::config::load_popd(popd_config_file);
    if (!loaded) {
      std::fprintf(stderr, "cmail: %s\n", loaded.error().message().c_str());
      return 1;
    }
    popd = *loaded;
    popd_config_name = popd_config_file;
  }
  if (!imapd_config_file.empty()) {
    auto loaded = daemon::config::load_imapd(imapd_config_file);
    if (!loaded) {
      std::fprintf(stderr, "cmail: %s\n", loaded.error().message().c_str());
      return 1;
    }
    imapd = *loaded;
    imapd_config_name = imapd_config_file;
  }
  std::string config_name = "defaults";
  if (!config_file.empty()) {
    auto loaded = daemon::config::load_smtpd(config_file);
    if (!loaded) {
      std::fprintf(stderr, "cmail: %s\n", loaded.error().message().c_str());
      return 1;
    }
    cfg = *loaded;
    config_name = config_file;
  } else {
    std::error_code ec;
    fs::create_directories(data, ec);
    if (ec) {
      std::fprintf(stderr, "cmail: cannot create %s: %s\n", data.c_str(), ec.message().c_str());
      return 1;
    }
    fs::permissions(data, fs::perms::owner_all, fs::perm_options::replace, ec);
    const std::string cert = (fs::path(data) / "cert.pem").string(), key = (fs::path(data) / "key.pem").string();
    if (!fs::exists(cert) || !fs::exists(key)) {
      if (Status st = net::generate_self_signed(cert, key, hostname); !st.ok()) {
        std::fprintf(stderr, "cmail: cannot make a certificate: %s\n", st.message().c_str());
        return 1;
      }
      logger.log(1, "created a self-signed certificate for " + hostname + " in " + data);
    }
    cfg.common.database = (fs::path(data) / "master.db3").string();
    auto add = [&](std::uint16_t port, bool tlsonly, bool auth) {
      daemon::config::SmtpdListener l;
      l.host = host;
      l.port = port;
      l.announce = hostname;
      l.size = 50 * 1024 * 1024;
      l.cert = cert;
      l.key = key;
      l.tlsonly = tlsonly;
      l.auth = auth;
      l.auth_tlsonly = auth;
      l.auth_strict = auth;
      cfg.listeners.push_back(l);
    };
    add(smtp_port, false, false);       // inbound: STARTTLS offered, no AUTH
    add(submission_port, false, true);  // submission: AUTH only inside TLS, required
    add(smtps_port, true, true);        // submissions (RFC 8314): implicit TLS, AUTH required
    if (popd_config_file.empty()) {
      auto add_pop3 = [&](std::uint16_t port, bool tlsonly) {
        daemon::config::PopdListener l;
        l.host = host;
        l.port = port;
        l.announce = hostname;
        l.cert = cert;
        l.key = key;
        l.tlsonly = tlsonly;
        l.tlsrequire = true;  // passwords only inside TLS, as for submission
        popd.listeners.push_back(l);
      };
      add_pop3(pop3_port, false);  // POP3 with STLS (RFC 2595)
      add_pop3(pop3s_port, true);  // POP3S (RFC 8314)
    }
    if (imapd_config_file.empty()) {
      auto add_imap = [&](std::uint16_t port, bool tlsonly) {
        daemon::config::ImapdListener l;
        l.host = host;
        l.port = port;
        l.announce = hostname;
        l.cert = cert;
        l.key = key;
        l.tlsonly = tlsonly;
        l.tlsrequire = true;  // passwords only inside TLS, as for POP3 and submission
        imapd.listeners.push_back(l);
      };
      add_imap(imap_port, false);  // IMAP with STARTTLS (RFC 9051 6.2.1)
      add_imap(imaps_port, true);  // IMAPS (RFC 8314)
    }
  }
  if (!popd_config_file.empty() &&
      fs::weakly_canonical(popd.common.database) != fs::weakly_canonical(cfg.common.database)) {
    std::fprintf(stderr, "cmail: %s names database %s, but cmail serve uses %s\n", popd_config_file.c_str(),
                 popd.common.database.c_str(), cfg.common.database.c_str());
    return 1;
  }
  if (!imapd_config_file.empty() &&
      fs::weakly_canonical(imapd.common.database) != fs::weakly_canonical(cfg.common.database)) {
    std::fprintf(stderr, "cmail: %s names database %s, but cmail serve uses %s\n", imapd_config_file.c_str(),
                 imapd.common.database.c_str(), cfg.common.database.c_str());
    return 1;
  }
  store::StoreOptions so;
  so.create_if_missing = config_file.empty();
  so.logger = [&](const std::string& l) { logger.log(1, l); };
  auto store = store::Store::open(cfg.common.database, so);
  if (!store) {
    std::fprintf(stderr, "cmail: %s\n", store.error().message().c_str());
    return 1;
  }
  // One guard for every listener: a guesser's SMTP failures count for POP3 and IMAP too
  // (docs/logging.md#authentication-penalties).
  backends::AuthGuardOptions guard_options = cfg.auth_guard.value_or(
      popd.auth_guard.value_or(imapd.auth_guard.value_or(backends::AuthGuardOptions{})));
  if (!authguard.empty()) {
    auto parsed = daemon::config::parse_authguard(authguard);
    if (!parsed) {
      std::fprintf(stderr, "cmail: --authguard: %s\n", parsed.error().message().c_str());
      return 1;
    }
    guard_options = *parsed;
  }
  auto guard = std::make_shared<backends::AuthGuard>(guard_options);
  daemon::config::Dispatchd dcfg;
  if (!dispatchd_config.empty()) {
    auto loaded = daemon::config::load_dispatchd(dispatchd_config, false);  // the database is serve's own
    if (!loaded) {
      std::fprintf(stderr, "cmail: %s\n", loaded.error().message().c_str());
      return 1;
    }
    dcfg = *loaded;
  }
  if (dcfg.announce.empty()) dcfg.announce = hostname;
  LogSink log([&](int level, std::string_view l) { logger.log(level, l); }, verbosity);
  net::Runtime runtime;
  // One resolver for intake's SPF checks and outbound delivery: the --resolver name servers,
  // else the files' resolver lines, else the system's.
  net::ResolverOptions ro;
  ro.servers = resolvers;
  if (ro.servers.empty()) {
    ro.servers = cfg.resolvers;
    ro.servers.insert(ro.servers.end(), dcfg.resolvers.begin(), dcfg.resolvers.end());
  }
  ro.dnssec = dcfg.dnssec;  // the --dispatchd-config file's `dnssec on` (docs/tls-policy.md#dane)
  auto resolver = net::make_resolver(runtime, ro);
  if (!resolver) {
    std::fprintf(stderr, "cmail: resolver: %s\n", resolver.error().message().c_str());
    return 1;
  }
  const bool auth_checks = cfg.auth_checks && !no_auth_checks;  // docs/smtp.md#spf-on-intake
  auto bound = daemon::add_smtp_listeners(runtime, **store, cfg.listeners, config_name, guard, log, cfg.max_in_flight,
                                          auth_checks ? resolver->get() : nullptr);
  if (!bound) {
    std::fprintf(stderr, "cmail: %s\n", bound.error().message().c_str());
    return 1;
  }
  auto pop3_bound = daemon::add_pop3_listeners(runtime, **store, popd.listeners, popd_config_name, guard, log);
  if (!pop3_bound) {
    std::fprintf(stderr, "cmail: %s\n", pop3_bound.error().message().c_str());
    return 1;
  }
  bound->insert(bound->end(), pop3_bound->begin(), pop3_bound->end());
  auto imap_bound = daemon::add_imap_listeners(runtime, **store, imapd.listeners, imapd_config_name, guard, log,
                                               imapd_config_file.empty() ? daemon::config::kImapMaxPerUser
                                                                         : imapd.max_per_user);
  if (!imap_bound) {
    std::fprintf(stderr, "cmail: %s\n", imap_bound.error().message().c_str());
    return 1;
  }
  bound->insert(bound->end(), imap_bound->begin(), imap_bound->end());
  // Outbound delivery in the same loop: mail for other hosts, redirects, handoffs, bounces.
  net::DispatcherOptions dopts = daemon::dispatcher_options(dcfg);
  dopts.log = [&](int level, std::string_view line) { logger.log(level, line); };
  auto dispatcher = net::Dispatcher::create(runtime, **store, **resolver, dopts);
  if (!dispatcher) {
    std::fprintf(stderr, "cmail: %s\n", dispatcher.error().message().c_str());
    return 1;
  }
  (*dispatcher)->start();
  // Signals before the listener lines: whoever reads them may signal at once.
  runtime.handle_signals(std::chrono::seconds(10), [&] { (*dispatcher)->run_now(); });
  for (const net::BoundListener& b : *bound) std::printf("%s %s:%u\n", b.kind.c_str(), b.host.c_str(), b.port);
  if (config_file.empty())
    std::printf(
        "database %s\n"
        "add a user: cmail-admin -d %s user add alice && cmail-admin -d %s address add alice@%s store alice "
        "&& cmail-admin -d %s smtpd enable alice any && cmail-admin -d %s popd enable alice "
        "&& cmail-admin -d %s imapd enable alice\n",
        cfg.common.database.c_str(), cfg.common.database.c_str(), cfg.common.database.c_str(), hostname.c_str(),
        cfg.common.database.c_str(), cfg.common.database.c_str(), cfg.common.database.c_str());
  std::fflush(stdout);
  runtime.run();
  return 0;
}
