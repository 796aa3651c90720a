// libFuzzer target: the whole SMTP server engine, one conversation per input (EHLO, STARTTLS,
// AUTH, MAIL, RCPT, DATA, BDAT, pipelined or not). The first byte chooses options; the rest is
// fed in pieces whose size comes from the second. The Session answers at once, later
// (pending, then complete() with the answer it would have given) or with a backend failure,
// by turns, so that every verdict path is taken. Invariants: no crash; no Close followed by
// more output; the engine's buffered input stays bounded; no MAIL before AUTH when AUTH is
// required and no credentials outside TLS when TLS is required for them; a message reaches
// data_end only within the SIZE limit and without NUL octets unless BODY=BINARYMIME.
#include <cmail/smtp/server.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using cmail::smtp::Verdict;

struct Accepting : cmail::smtp::Session {
  enum class Decision { None, Helo, Auth, Mail, Rcpt, DataEnd };
  const cmail::smtp::ServerOptions* options = nullptr;
  int n = 0;
  Decision pending = Decision::None;
  bool pending_auth_ok = false;
  std::uint64_t message = 0;  // octets of the current message given to data_chunk()
  bool nul = false;           // ... holding a NUL
  bool binary = false;        // BODY=BINARYMIME

  Verdict later(Decision d) {
    pending = d;
    return Verdict::pending();
  }
  // The answer complete() gives for the decision that was left pending.
  Verdict answer() {
    const Decision d = pending;
    pending = Decision::None;
    if (d == Decision::Auth && !pending_auth_ok) return Verdict::reject(cmail::smtp::reply(535, {5, 7, 8}, "no"));
    if (d == Decision::Auth) return Verdict::authenticated("u");
    return Verdict::accept();
  }
  Verdict helo(const cmail::smtp::SessionInfo&) override {
    if (++n % 11 == 0) return later(Decision::Helo);
    return n % 13 == 0 ? Verdict::reject(cmail::smtp::reply(550, {5, 7, 1}, "no")) : Verdict::accept();
  }
  Verdict auth(const cmail::smtp::SessionInfo& info, const cmail::sasl::Credentials& c) override {
    if (options->auth_requires_tls && !info.tls) std::abort();  // credentials outside TLS
    if (++n % 5 == 0) {
      pending_auth_ok = c.password == "pw";
      return later(Decision::Auth);
    }
    if (n % 17 == 0) return Verdict::failed(cmail::Status::io_error("x"));
    return c.password == "pw" ? Verdict::authenticated(c.authcid) : Verdict::reject(cmail::smtp::reply(535, {5, 7, 8}, "no"));
  }
  Verdict mail(const cmail::smtp::SessionInfo& info, const cmail::smtp::Path&, const cmail::smtp::MailParams& p) override {
    if (options->require_auth && !info.user) std::abort();  // MAIL before AUTH on submission
    message = 0;
    nul = false;
    binary = p.body == cmail::smtp::BodyType::BinaryMime;
    if (++n % 7 == 0) return later(Decision::Mail);
    return n % 19 == 0 ? Verdict::failed(cmail::Status::io_error("x")) : Verdict::accept();
  }
  Verdict rcpt(const cmail::smtp::SessionInfo&, const cmail::smtp::Path& p, const cmail::smtp::RcptParams&) override {
    if (p.local == "no") return Verdict::reject(cmail::smtp::reply(550, {5, 1, 1}, "no"));
    return ++n % 7 == 0 ? later(Decision::Rcpt) : Verdict::accept();
  }
  void data_chunk(std::string_view b) override {
    message += b.size();
    if (b.find('\0') != std::string_view::npos) nul = true;
  }
  Verdict data_end(const cmail::smtp::SessionInfo&) override {
    if (options->max_message_size && message > options->max_message_size) std::abort();  // RFC 1870 6.3
    if (nul && !binary) std::abort();  // RFC 3030 3: NUL only in BINARYMIME
    message = 0;
    nul = false;
    if (++n % 3 == 0) return later(Decision::DataEnd);
    if (n % 5 == 0) return Verdict::failed(cmail::Status::io_error("x"));
    return n % 4 == 0 ? Verdict::reject(cmail::smtp::reply(554, {5, 6, 0}, "no")) : Verdict::accept();
  }
  void reset() override {
    message = 0;
    nul = false;
  }
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
  session.options = &o;
  cmail::smtp::Server s(o, session);
  std::size_t step = 1 + data[1] % 64;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  bool closed = false;
  while (!in.empty()) {
    std::size_t n = std::min(step, in.size());
    s.receive(in.substr(0, n));
    in.remove_prefix(n);
    for (int rounds = 0; rounds < 4; ++rounds) {  // a completion may run pipelined commands into another
      while (auto ev = s.next_event()) {
        if (std::holds_alternative<cmail::smtp::Close>(*ev)) closed = true;
        if (std::holds_alternative<cmail::smtp::StartTls>(*ev)) s.tls_established({"TLSv1.2", "X", 128});
      }
      if (session.pending == Accepting::Decision::None) break;
      if (s.state() == cmail::smtp::Server::State::Closed) {
        session.pending = Accepting::Decision::None;
        break;
      }
      if (!s.complete(session.answer()).ok()) std::abort();  // the engine awaited this verdict
    }
    std::size_t before = s.pending_output().size();
    s.consume_output(before);
    if (closed && s.state() != cmail::smtp::Server::State::Closed) std::abort();
    if (s.deadline().budget.count() < 0) std::abort();
  }
  s.receive_eof();
  return 0;
}
