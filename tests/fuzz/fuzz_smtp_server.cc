// libFuzzer target: the whole SMTP server engine. The first byte chooses options; the rest is
// fed in pieces whose sizes come from the input. Invariants: no crash, no Close followed by
// more output, and the engine's buffered input stays bounded.
#include <cmail/smtp/server.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

struct Accepting : cmail::smtp::Session {
  std::size_t data = 0;
  int n = 0;
  cmail::smtp::Verdict auth(const cmail::smtp::SessionInfo&, const cmail::sasl::Credentials& c) override {
    return c.password == "pw" ? cmail::smtp::Verdict::authenticated(c.authcid) : cmail::smtp::Verdict::reject(cmail::smtp::reply(535, {5, 7, 8}, "no"));
  }
  cmail::smtp::Verdict mail(const cmail::smtp::SessionInfo&, const cmail::smtp::Path&, const cmail::smtp::MailParams&) override {
    return ++n % 7 == 0 ? cmail::smtp::Verdict::pending() : cmail::smtp::Verdict::accept();
  }
  cmail::smtp::Verdict rcpt(const cmail::smtp::SessionInfo&, const cmail::smtp::Path& p, const cmail::smtp::RcptParams&) override {
    return p.local == "no" ? cmail::smtp::Verdict::reject(cmail::smtp::reply(550, {5, 1, 1}, "no")) : cmail::smtp::Verdict::accept();
  }
  void data_chunk(std::string_view b) override { data += b.size(); }
  cmail::smtp::Verdict data_end(const cmail::smtp::SessionInfo&) override { return cmail::smtp::Verdict::accept(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  cmail::smtp::ServerOptions o;
  o.starttls_available = data[0] & 1;
  o.auth_enabled = data[0] & 2;
  o.auth_requires_tls = data[0] & 4;
  o.require_auth = data[0] & 8;
  o.max_message_size = (data[0] & 16) ? 200 : 0;
  o.chunking = !(data[0] & 32);
  o.max_hops = 3;
  o.strict_envelopes = data[0] & 64;
  Accepting session;
  cmail::smtp::Server s(o, session);
  std::size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  bool closed = false;
  while (!in.empty()) {
    std::size_t n = std::min(step, in.size());
    s.receive(in.substr(0, n));
    in.remove_prefix(n);
    while (auto ev = s.next_event()) {
      if (std::holds_alternative<cmail::smtp::Close>(*ev)) closed = true;
      if (std::holds_alternative<cmail::smtp::StartTls>(*ev)) s.tls_established({"TLSv1.2", "X", 128});
    }
    if (s.state() != cmail::smtp::Server::State::Closed && !s.wants_read())
      (void)s.complete(cmail::smtp::Verdict::accept());
    std::size_t before = s.pending_output().size();
    s.consume_output(before);
    if (closed && s.state() != cmail::smtp::Server::State::Closed) std::abort();
    if (s.deadline().budget.count() < 0) std::abort();
  }
  s.receive_eof();
  return 0;
}
