// cmail serve: every module in one process, with a zero-config default (README quick start).
#include <cmail/config.h>
#include <cmail/daemon.h>
#include <cmail/dispatcher.h>
#include <cmail/net.h>
#include <cmail/resolver.h>
#include <cmail/smtp_service.h>
#include <cmail/store.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

using namespace cmail;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"cmail: an embeddable mail server"};
  app.require_subcommand(1);
  auto* serve = app.add_subcommand("serve", "run the mail server: SMTP intake and submission, outbound delivery");
  std::string data = "cmail-data", config_file, host = "127.0.0.1", hostname = "localhost";
  std::uint16_t smtp_port = 2525, submission_port = 2587, smtps_port = 2465;
  int verbosity = 1;
  std::vector<std::string> resolvers;
  std::string dispatchd_config;
  serve->add_option("--data", data, "data directory: master.db3, cert.pem, key.pem (created if missing)");
  serve->add_option("--config", config_file, "a cmail-smtpd config file instead of the defaults");
  serve->add_option("--host", host, "address to listen on");
  serve->add_option("--hostname", hostname, "name in greetings, Received headers and the certificate");
  serve->add_option("--smtp-port", smtp_port, "inbound SMTP with STARTTLS (0 = any free port)");
  serve->add_option("--submission-port", submission_port, "submission: STARTTLS, AUTH required");
  serve->add_option("--smtps-port", smtps_port, "submission over implicit TLS, AUTH required");
  serve->add_option("--resolver", resolvers, "DNS server HOST[:PORT] for outbound delivery (repeatable; default: the system's)");
  serve->add_option("--dispatchd-config", dispatchd_config, "a cmail-dispatchd config file for outbound delivery");
  serve->add_option("-v,--verbosity", verbosity, "0 errors, 1 info, 3 debug");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  Logger logger(verbosity, "");
  config::Smtpd cfg;
  std::string config_name = "defaults";
  if (!config_file.empty()) {
    auto loaded = config::load_smtpd(config_file);
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
      if (Status st = generate_self_signed(cert, key, hostname); !st.ok()) {
        std::fprintf(stderr, "cmail: cannot make a certificate: %s\n", st.message().c_str());
        return 1;
      }
      logger.log(1, "created a self-signed certificate for " + hostname + " in " + data);
    }
    cfg.common.database = (fs::path(data) / "master.db3").string();
    auto add = [&](std::uint16_t port, bool tlsonly, bool auth) {
      config::SmtpdListener l;
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
  }
  StoreOptions so;
  so.create_if_missing = config_file.empty();
  so.logger = [&](const std::string& l) { logger.log(1, l); };
  auto store = Store::open(cfg.common.database, so);
  if (!store) {
    std::fprintf(stderr, "cmail: %s\n", store.error().message().c_str());
    return 1;
  }
  net::Runtime runtime;
  auto bound = add_smtp_listeners(runtime, **store, cfg.listeners, config_name,
                                  [&](std::string_view l) { logger.log(2, l); });
  if (!bound) {
    std::fprintf(stderr, "cmail: %s\n", bound.error().message().c_str());
    return 1;
  }
  // Outbound delivery in the same loop: mail for other hosts, redirects, handoffs, bounces.
  config::Dispatchd dcfg;
  if (!dispatchd_config.empty()) {
    auto loaded = config::load_dispatchd(dispatchd_config, false);  // the database is serve's own
    if (!loaded) {
      std::fprintf(stderr, "cmail: %s\n", loaded.error().message().c_str());
      return 1;
    }
    dcfg = *loaded;
  }
  if (dcfg.announce.empty()) dcfg.announce = hostname;
  for (const auto& r : resolvers) dcfg.resolvers.push_back(r);
  net::ResolverOptions ro;
  ro.servers = dcfg.resolvers;
  auto resolver = net::make_resolver(runtime, ro);
  if (!resolver) {
    std::fprintf(stderr, "cmail: resolver: %s\n", resolver.error().message().c_str());
    return 1;
  }
  DispatcherOptions dopts = dispatcher_options(dcfg);
  dopts.log = [&](int level, std::string_view line) { logger.log(level, line); };
  auto dispatcher = Dispatcher::create(runtime, **store, **resolver, dopts);
  if (!dispatcher) {
    std::fprintf(stderr, "cmail: %s\n", dispatcher.error().message().c_str());
    return 1;
  }
  (*dispatcher)->start();
  for (const BoundListener& b : *bound) std::printf("%s %s:%u\n", b.kind.c_str(), b.host.c_str(), b.port);
  if (config_file.empty())
    std::printf(
        "database %s\n"
        "add a user: cmail-admin -d %s user add alice && cmail-admin -d %s address add alice@%s store alice "
        "&& cmail-admin -d %s smtpd enable alice any\n",
        cfg.common.database.c_str(), cfg.common.database.c_str(), cfg.common.database.c_str(), hostname.c_str(),
        cfg.common.database.c_str());
  std::fflush(stdout);
  runtime.handle_signals(std::chrono::seconds(10), [&] { (*dispatcher)->run_now(); });
  runtime.run();
  return 0;
}
