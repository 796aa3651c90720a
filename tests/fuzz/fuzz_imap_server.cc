// libFuzzer target: the IMAP server engine, one conversation per input (the command loop with
// synchronizing and non-synchronizing literals, refused literals dropped, LOGIN, AUTHENTICATE
// with SASL-IR, STARTTLS, ENABLE, ID, NAMESPACE, LOGOUT, LIST, LSUB, STATUS, CREATE, DELETE, RENAME,
// SUBSCRIBE). Also: no mailbox call before log-in; never CREATE "", DELETE INBOX, RENAME to INBOX. The first byte chooses options, the
// second the size of the pieces the rest is fed in. The Session answers at once, later
// (pending, then complete()) or with a backend failure, by turns. Invariants: no crash; no
// log-in outside TLS when TLS is required; nothing but Logout after a Close event; output and
// buffered input bounded.
#include <cmail/imap/server.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using cmail::imap::RespCode;
using cmail::imap::Verdict;

struct Users : cmail::imap::Session {
  const cmail::imap::ServerOptions* options = nullptr;
  const cmail::imap::Server* server = nullptr;
  int n = 0;
  bool pending = false;
  cmail::sasl::Credentials pending_login;

  Verdict answer(const cmail::sasl::Credentials& c) {
    if (c.password != "pw") return Verdict::reject(RespCode::AuthenticationFailed, "no");
    return Verdict::user(c.authcid.empty() ? "x" : c.authcid);
  }
  Verdict login(const cmail::sasl::Credentials& c) override {
    if (options->tls_required && !server->tls()) std::abort();  // credentials outside TLS
    if (++n % 5 == 0) {
      pending = true;
      pending_login = c;
      return Verdict::pending();
    }
    return n % 11 == 0 ? Verdict::failed(cmail::Status::io_error("x")) : answer(c);
  }
  // The mailbox commands: answered at once, refused or failed by turns.
  Verdict change() {
    ++n;
    if (n % 7 == 0) return Verdict::reject(RespCode::NonExistent, "no");
    return n % 13 == 0 ? Verdict::failed(cmail::Status::io_error("x")) : Verdict::accept();
  }
  Verdict list_mailboxes() override {
    if (server->state() == cmail::imap::Server::State::NotAuthenticated) std::abort();
    return Verdict::mailboxes({{"INBOX", "", true, true}, {"Sent", "\\Sent", true, false},
                               {"a/b/c", "", true, true}, {"a/\xC3\xBC", "", true, false}, {"gone/x", "", false, true}});
  }
  Verdict status(const std::string&) override { return Verdict::counts({}); }
  Verdict create(const std::string& m) override { return m.empty() ? std::abort(), change() : change(); }
  Verdict remove(const std::string& m) override { return m == "INBOX" ? std::abort(), change() : change(); }
  Verdict rename(const std::string&, const std::string& to) override { return to == "INBOX" ? std::abort(), change() : change(); }
  Verdict subscribe(const std::string&, bool) override { return change(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  cmail::imap::ServerOptions o;
  o.starttls_available = data[0] & 1;
  o.tls_required = data[0] & 2;
  o.tls_active = data[0] & 4;
  o.max_errors = (data[0] & 8) ? 3 : 20;
  o.limits.max_literal = (data[0] & 16) ? 16 : 4096;
  o.max_command_line = (data[0] & 32) ? 64 : 8192;
  Users session;
  session.options = &o;
  cmail::imap::Server s(o, session);
  session.server = &s;
  std::size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  bool closed = false;
  while (!in.empty()) {
    std::size_t n = std::min(step, in.size());
    s.receive(in.substr(0, n));
    in.remove_prefix(n);
    for (int rounds = 0; rounds < 4; ++rounds) {
      while (auto ev = s.next_event()) {
        if (std::holds_alternative<cmail::imap::Close>(*ev)) closed = true;
        if (std::holds_alternative<cmail::imap::StartTls>(*ev)) s.tls_established({"TLSv1.3", "X", 128});
      }
      if (session.pending) {
        session.pending = false;
        if (s.state() != cmail::imap::Server::State::Logout &&
            !s.complete(session.answer(session.pending_login)).ok())
          std::abort();  // the engine awaited this verdict
      }
      s.consume_output(s.pending_output().size());
    }
    if (closed && s.state() != cmail::imap::Server::State::Logout) std::abort();
    if (s.pending_output().size() > 512 * 1024) std::abort();
    if (s.deadline().budget.count() < 0) std::abort();
  }
  s.receive_eof();
  return 0;
}
