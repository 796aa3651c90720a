// libFuzzer target: the whole POP3 server engine, one conversation per input (USER/PASS, AUTH,
// STLS, LIST/UIDL/STAT, RETR and TOP streamed, DELE, RSET, QUIT and the UPDATE state). The
// first byte chooses options, the second the size of the pieces the rest is fed in. The
// Session answers at once, later (pending, then complete() with the answer it would have
// given) or with a backend failure, by turns. Invariants: no crash; nothing but Closed after a
// Close event; no credentials outside TLS when TLS is required; retrieve() only for a listed
// message; update() once, from QUIT, with listed messages in ascending order; buffered output
// bounded (a message is streamed, never queued whole).
#include <cmail/proto/message.h>

#include <cmail/pop3/server.h>

#include <algorithm>
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

// A message handed out in pieces, as the store streams a large one: 1 to 9 octets for the first
// 512 (every split of a line end and of a leading dot), then up to 8 KiB, so that the 70,000-octet
// message costs tens of reads rather than thousands; the fourth source in turn fails after its
// first piece (the engine must close, not end the message).
struct Pieces : cmail::proto::Source {
  std::string_view text;
  std::size_t pos = 0;
  bool fail = false;
  cmail::Status read(std::size_t max, std::string& out) override {
    if (fail && pos > 0) return cmail::Status::io_error("gone");
    const std::size_t want = pos < 512 ? 1 + pos % 9 : 1 + (pos * 7919) % 8192;
    const std::size_t k = std::min({max, text.size() - pos, want});
    out.append(text.substr(pos, k));
    pos += k;
    return cmail::Status();
  }
};

struct Maildrop : cmail::pop3::Session {
  enum class Decision { None, Login, Retrieve, Update };
  const cmail::pop3::ServerOptions* options = nullptr;
  const cmail::pop3::Server* server = nullptr;
  int n = 0;
  int updates = 0;
  Decision pending = Decision::None;
  cmail::sasl::Credentials pending_login;
  std::size_t pending_index = 0;

  Verdict listing(const cmail::sasl::Credentials& c) {
    if (c.password != "pw") return Verdict::reject(RespCode::Auth, "no");
    std::vector<cmail::pop3::Listing> l;
    for (int i = 0; i < 3; ++i) l.push_back({cmail::proto::wire_size(kMessages[i]), "u" + std::to_string(i)});
    return Verdict::maildrop(c.authcid.empty() ? "x" : c.authcid, std::move(l));
  }
  // The answer complete() gives for the decision that was left pending.
  Verdict answer() {
    const Decision d = pending;
    pending = Decision::None;
    if (d == Decision::Login) return listing(pending_login);
    if (d == Decision::Retrieve) return Verdict::message(kMessages[pending_index]);
    return Verdict::accept();
  }
  Verdict login(const cmail::sasl::Credentials& c) override {
    if (options->tls_required && !server->tls()) std::abort();  // credentials outside TLS
    if (++n % 5 == 0) {
      pending = Decision::Login;
      pending_login = c;
      return Verdict::pending();
    }
    if (n % 13 == 0) return Verdict::reject(RespCode::InUse, "locked");
    return n % 11 == 0 ? Verdict::failed(cmail::Status::io_error("x")) : listing(c);
  }
  Verdict retrieve(std::size_t i) override {
    if (i >= 3) std::abort();  // only listed messages
    if (++n % 7 == 0) {
      pending = Decision::Retrieve;
      pending_index = i;
      return Verdict::pending();
    }
    if (n % 17 == 0) return Verdict::failed(cmail::Status::io_error("x"));
    if (n % 2 == 0) {
      auto p = std::make_shared<Pieces>();
      p->text = kMessages[i];
      p->fail = n % 8 == 0;
      return Verdict::message(std::shared_ptr<cmail::proto::Source>(p));
    }
    return Verdict::message(kMessages[i]);
  }
  Verdict update(const std::vector<std::size_t>& deleted) override {
    if (++updates > 1 || server->state() != cmail::pop3::Server::State::Update) std::abort();  // once, from QUIT
    for (std::size_t k = 0; k < deleted.size(); ++k)
      if (deleted[k] >= 3 || (k > 0 && deleted[k] <= deleted[k - 1])) std::abort();
    if (++n % 3 == 0) {
      pending = Decision::Update;
      return Verdict::pending();
    }
    return n % 2 ? Verdict::accept() : Verdict::failed(cmail::Status::io_error("x"));
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
  session.options = &o;
  cmail::pop3::Server s(o, session);
  session.server = &s;
  std::size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  bool closed = false;
  while (!in.empty()) {
    std::size_t n = std::min(step, in.size());
    s.receive(in.substr(0, n));
    in.remove_prefix(n);
    for (int rounds = 0; rounds < 4; ++rounds) {  // a completion or sent output may run pipelined commands
      while (auto ev = s.next_event()) {
        if (std::holds_alternative<cmail::pop3::Close>(*ev)) closed = true;
        if (std::holds_alternative<cmail::pop3::StartTls>(*ev)) s.tls_established({"TLSv1.2", "X", 128});
      }
      if (session.pending != Maildrop::Decision::None) {
        if (s.state() == cmail::pop3::Server::State::Closed) session.pending = Maildrop::Decision::None;
        else if (!s.complete(session.answer()).ok()) std::abort();  // the engine awaited this verdict
      }
      s.consume_output(s.pending_output().size());
    }
    if (closed && s.state() != cmail::pop3::Server::State::Closed) std::abort();
    if (s.pending_output().size() > 512 * 1024) std::abort();  // streamed, never all at once
    if (s.deadline().budget.count() < 0) std::abort();
  }
  s.receive_eof();
  return 0;
}
