// libFuzzer target: the whole POP3 server engine (command parser, SASL, STLS, streamed RETR).
// The first byte chooses options, the second the size of the pieces the rest is fed in.
// Invariants: no crash, nothing but Closed after a Close event, deletions only through QUIT,
// buffered input bounded.
#include <cmail/proto/message.h>

#include <cmail/pop3/server.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using cmail::pop3::RespCode;
using cmail::pop3::Verdict;

const std::string kMessages[] = {
    "Subject: a\r\n\r\nbody\r\n",
    ".leading\n.\nbare LF\rbare CR",
    std::string(70000, '.') + "\r\n.\r\n",
};

struct Maildrop : cmail::pop3::Session {
  int n = 0;
  Verdict login(const cmail::sasl::Credentials& c) override {
    if (++n % 5 == 0) return Verdict::pending();
    if (c.password != "pw") return Verdict::reject(RespCode::Auth, "no");
    std::vector<cmail::pop3::Listing> l;
    for (int i = 0; i < 3; ++i) l.push_back({cmail::proto::wire_size(kMessages[i]), "u" + std::to_string(i)});
    return Verdict::maildrop(c.authcid, std::move(l));
  }
  Verdict retrieve(std::size_t i) override {
    if (++n % 7 == 0) return Verdict::pending();
    return Verdict::message(kMessages[i % 3]);
  }
  Verdict update(const std::vector<std::size_t>&) override {
    return ++n % 2 ? Verdict::accept() : Verdict::failed(cmail::Status::io_error("x"));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  cmail::pop3::ServerOptions o;
  o.starttls_available = data[0] & 1;
  o.tls_required = data[0] & 2;
  o.tls_active = data[0] & 4;
  o.max_errors = (data[0] & 8) ? 3 : 10;
  Maildrop session;
  cmail::pop3::Server s(o, session);
  std::size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  bool closed = false;
  while (!in.empty()) {
    std::size_t n = std::min(step, in.size());
    s.receive(in.substr(0, n));
    in.remove_prefix(n);
    for (int rounds = 0; rounds < 4; ++rounds) {
      while (auto ev = s.next_event()) {
        if (std::holds_alternative<cmail::pop3::Close>(*ev)) closed = true;
        if (std::holds_alternative<cmail::pop3::StartTls>(*ev)) s.tls_established({"TLSv1.2", "X", 128});
      }
      if (s.state() != cmail::pop3::Server::State::Closed && !s.wants_read() &&
          s.state() != cmail::pop3::Server::State::Update)
        (void)s.complete(Verdict::message(kMessages[0]));  // a pending login or retrieve
      if (s.state() == cmail::pop3::Server::State::Update) (void)s.complete(Verdict::accept());
      s.consume_output(s.pending_output().size());
    }
    if (closed && s.state() != cmail::pop3::Server::State::Closed) std::abort();
    if (s.pending_output().size() > 512 * 1024) std::abort();  // streamed, never all at once
    if (s.deadline().budget.count() < 0) std::abort();
  }
  s.receive_eof();
  return 0;
}
