// examples/intake.cc: mail intake inside your own program, no database.
// Accepts mail for one address on 127.0.0.1 and prints each message to stdout.
//   build/examples/intake me@example.test 2525      (port 0: any free port)
#include <cmail/net/runtime.h>

#include <cmail/smtp/server.h>

#include <cstdio>
#include <iostream>
#include <string>

using namespace cmail;
using namespace cmail::smtp;

struct Printer : Session {
  std::string me, message;
  explicit Printer(std::string address) : me(std::move(address)) {}
  Verdict mail(const SessionInfo&, const Path&, const MailParams&) override { return Verdict::accept(); }
  Verdict rcpt(const SessionInfo&, const Path& to, const RcptParams&) override {
    if (to.address() == me) return Verdict::accept();
    return Verdict::reject(reply(550, {5, 1, 1}, "No such user here"));
  }
  void data_chunk(std::string_view bytes) override { message += bytes; }
  Verdict data_end(const SessionInfo& info) override {
    std::cout << "--- message from " << info.helo << " ---\n" << message << std::flush;
    message.clear();
    return Verdict::accept("Printed");
  }
  void reset() override { message.clear(); }
};

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]), 2;
  net::Runtime runtime;
  net::ListenerOptions listen;
  listen.port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  std::string address = argv[1];
  ServerOptions options;
  options.hostname = "intake.example";
  auto id = runtime.listen(listen, [address, options](const proto::PeerInfo&, net::Kick) {
    auto session = std::make_shared<Printer>(address);
    auto server = std::make_shared<Server>(options, *session);
    return std::make_unique<net::EngineHandler<Server>>(server, session);
  });
  if (!id) return std::fprintf(stderr, "%s\n", id.error().to_string().c_str()), 1;
  std::printf("listening on 127.0.0.1:%u\n", runtime.port(*id));
  std::fflush(stdout);
  runtime.handle_signals(std::chrono::seconds(5), nullptr);
  runtime.run();
}
