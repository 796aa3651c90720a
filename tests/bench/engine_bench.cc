// tests/bench/engine_bench.cc: the sans-I/O engines alone, with no sockets and no store.
//
//   engine-bench smtp N    N pipelined 4 KiB transactions into smtp::Server, fed in 4 KiB reads
//   engine-bench pop3 N    a login and N RETRs of a 4 KiB message from pop3::Server, taken in
//                          64 KiB writes
//
// Prints what went through and the time taken. For figures that do not depend on the
// machine's load, count instructions: valgrind --tool=callgrind build/tests/bench/engine-bench
// smtp 2000 (docs/performance.md, "After the engine kernel").
#include <cmail/pop3/server.h>
#include <cmail/proto/message.h>
#include <cmail/smtp/server.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace cmail;

namespace {

struct Accepting : smtp::Session {
  std::size_t bytes = 0;
  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override {
    return smtp::Verdict::accept();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override {
    return smtp::Verdict::accept();
  }
  void data_chunk(std::string_view b) override { bytes += b.size(); }
  smtp::Verdict data_end(const smtp::SessionInfo&) override { return smtp::Verdict::accept("queued"); }
};

struct Maildrop : pop3::Session {
  std::string message;
  int count;
  Maildrop(std::string m, int n) : message(std::move(m)), count(n) {}
  pop3::Verdict login(const sasl::Credentials& c) override {
    std::vector<pop3::Listing> l;
    for (int i = 0; i < count; ++i) l.push_back({proto::wire_size(message), "u" + std::to_string(i)});
    return pop3::Verdict::maildrop(c.authcid, std::move(l));
  }
  pop3::Verdict retrieve(std::size_t) override { return pop3::Verdict::message(message); }
  pop3::Verdict update(const std::vector<std::size_t>&) override { return pop3::Verdict::accept(); }
};

std::string body_4k(std::string_view line) {
  std::string b = "From: a@remote.test\r\nTo: bench@example.test\r\nSubject: bench\r\n\r\n";
  while (b.size() < 4096) b += line;
  return b;
}

std::size_t smtp_run(int n) {
  const std::string txn = "MAIL FROM:<a@remote.test>\r\nRCPT TO:<bench@example.test>\r\nDATA\r\n" +
                          body_4k("0123456789012345678901234567890123456789012345678901234567890123456789012\r\n") +
                          ".\r\n";
  Accepting session;
  smtp::Server server(smtp::ServerOptions{}, session);
  server.receive("EHLO client.test\r\n");
  for (int i = 0; i < n; ++i) {
    for (std::size_t off = 0; off < txn.size(); off += 4096) server.receive(std::string_view(txn).substr(off, 4096));
    server.consume_output(server.pending_output().size());
  }
  return session.bytes;
}

std::size_t pop3_run(int n) {
  Maildrop session(body_4k(".a line that starts with a dot 0123456789012345678901234567890\r\n"), n);
  pop3::Server server(pop3::ServerOptions{}, session);
  server.receive("USER bench\r\nPASS bench\r\n");
  std::size_t out = 0;
  for (int i = 1; i <= n; ++i) {
    server.receive("RETR " + std::to_string(i) + "\r\n");
    while (!server.pending_output().empty()) {
      std::size_t k = std::min<std::size_t>(server.pending_output().size(), 64 * 1024);
      out += k;
      server.consume_output(k);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || (std::string_view(argv[1]) != "smtp" && std::string_view(argv[1]) != "pop3"))
    return std::fprintf(stderr, "usage: %s smtp|pop3 N\n", argv[0]), 2;
  const int n = std::atoi(argv[2]);
  const auto start = std::chrono::steady_clock::now();
  const std::size_t bytes = std::string_view(argv[1]) == "smtp" ? smtp_run(n) : pop3_run(n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %d in %.3f s (%.0f/s), %zu octets of message data\n", argv[1], n, s, n / s, bytes);
  return bytes > 0 ? 0 : 1;
}
