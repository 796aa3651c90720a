// libFuzzer target: the IMAP server engine, one conversation per input (the command loop with
// synchronizing and non-synchronizing literals, refused literals dropped, LOGIN, AUTHENTICATE
// with SASL-IR, STARTTLS, ENABLE, ID, NAMESPACE, LOGOUT, LIST, LSUB, STATUS, CREATE, DELETE, RENAME,
// SUBSCRIBE, and the selected state: SELECT, EXAMINE, FETCH, SEARCH, STORE, COPY, MOVE,
// EXPUNGE, APPEND streamed, IDLE, with changes "made elsewhere" reported now and then). Also:
// no mailbox call before log-in; never CREATE "", DELETE INBOX, RENAME to INBOX; the UIDs the
// engine names are always ones the mailbox had; APPEND's octets never exceed the size
// announced. The first byte chooses options, the
// second the size of the pieces the rest is fed in. The Session answers at once, later
// (pending, then complete()) or with a backend failure, by turns. Invariants: no crash; no
// log-in outside TLS when TLS is required; nothing but Logout after a Close event; output and
// buffered input bounded. FETCH answers come whole, in part (the rest asked again), or as a
// streamed Source that may fail midway (the connection then closes).
#include <cmail/imap/server.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

namespace {

using cmail::imap::RespCode;
using cmail::imap::Verdict;

// A message read in pieces of 7 octets; `fails`: an error after the first piece.
struct Chunks : cmail::proto::Source {
  std::string text;
  std::size_t at = 0;
  bool fails;
  Chunks(std::string t, bool f) : text(std::move(t)), fails(f) {}
  cmail::Status read(std::size_t max, std::string& out) override {
    if (fails && at > 0) return cmail::Status::io_error("gone");
    const std::size_t n = std::min({max, std::size_t{7}, text.size() - at});
    out.append(text, at, n);
    at += n;
    return cmail::Status();
  }
  std::optional<std::uint64_t> size() const override { return text.size(); }
};

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
  Verdict create(const std::string& m, const std::string&) override { return m.empty() ? std::abort(), change() : change(); }
  Verdict remove(const std::string& m) override { return m == "INBOX" ? std::abort(), change() : change(); }
  Verdict rename(const std::string&, const std::string& to) override { return to == "INBOX" ? std::abort(), change() : change(); }
  Verdict subscribe(const std::string&, bool) override { return change(); }

  // A mailbox of a few messages; "elsewhere" adds one or expunges one now and then.
  std::vector<std::uint32_t> uids{1, 2, 3, 5, 8};
  std::uint32_t next_uid = 9, highest_uid_given = 8;
  std::uint64_t modseq = 10;
  std::vector<std::uint32_t> expunged;
  std::uint64_t append_left = 0;
  void known(const std::vector<std::uint32_t>& named) const {
    for (std::uint32_t u : named)
      if (u == 0 || u > highest_uid_given) std::abort();  // the engine names only UIDs it was given
  }
  cmail::imap::MessageState state(std::uint32_t uid) const {
    return {uid, cmail::imap::Flags{uid % 3 == 0 ? cmail::imap::kSeen : 0u, {}}, modseq};
  }
  Verdict select(const std::string&, bool read_only) override {
    if (server->state() == cmail::imap::Server::State::NotAuthenticated) std::abort();
    if (++n % 9 == 0) return Verdict::reject(RespCode::NonExistent, "no");
    cmail::imap::SelectResult r;
    r.uidvalidity = 7;
    r.uidnext = next_uid;
    r.highest_modseq = modseq;
    r.read_only = read_only && n % 2;
    for (std::uint32_t u : uids) r.messages.push_back(state(u));
    return Verdict::selected(r);
  }
  Verdict changes(std::uint64_t, std::uint32_t) override {
    cmail::imap::MailboxChanges c;
    ++n;
    if (n % 3 == 0) {
      uids.push_back(next_uid);
      highest_uid_given = next_uid;
      c.messages.push_back(state(next_uid++));
    } else if (n % 4 == 0 && !uids.empty()) {
      c.expunged.push_back(uids.front());
      uids.erase(uids.begin());
    }
    c.uidnext = next_uid;
    c.highest_modseq = ++modseq;
    return n % 17 == 0 ? Verdict::failed(cmail::Status::io_error("x")) : Verdict::changes(c);
  }
  Verdict expunge(const std::vector<std::uint32_t>& named) override {
    known(named);
    std::vector<std::uint32_t> gone;
    if (!uids.empty() && ++n % 2) {
      gone.push_back(uids.back());
      uids.pop_back();
    }
    return Verdict::expunged(gone);
  }
  Verdict store(const std::vector<std::uint32_t>& named, cmail::imap::StoreOp, const cmail::imap::Flags& f,
                std::optional<std::uint64_t>) override {
    known(named);
    cmail::imap::StoreResult r;
    for (std::uint32_t u : named) r.messages.push_back({u, f, ++modseq});
    if (!named.empty() && ++n % 5 == 0) r.modified.push_back(named[0]);
    return Verdict::stored(r);
  }
  Verdict copy(const std::vector<std::uint32_t>& named, const std::string&, bool) override {
    known(named);
    if (++n % 6 == 0) return Verdict::reject(RespCode::TryCreate, "no");
    cmail::imap::CopyResult r{3, named, named};
    return Verdict::copied(r);
  }
  Verdict append_begin(const std::string&, const cmail::imap::Flags&, std::optional<std::int64_t>,
                       std::uint64_t size) override {
    if (++n % 4 == 0) return Verdict::reject(RespCode::TryCreate, "no");
    append_left = size;
    return Verdict::accept();
  }
  void append_chunk(std::string_view b) override {
    if (b.size() > append_left) std::abort();
    append_left -= b.size();
  }
  Verdict append_end() override {
    if (append_left != 0) std::abort();  // the message ended before its octets
    return Verdict::appended({7, next_uid++});
  }
  void append_abort() override { append_left = 0; }
  Verdict fetch(const std::vector<std::uint32_t>& named, const cmail::imap::FetchNeeds& needs) override {
    known(named);
    static const std::string message = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n--b--\r\n";
    std::vector<cmail::imap::FetchedMessage> out;
    for (std::uint32_t u : named) {
      cmail::imap::FetchedMessage m;
      m.state = state(u);
      m.size = message.size();
      m.seen_set = needs.set_seen && u % 2;
      if (needs.structure) m.structure = cmail::mail::parse_structure(message);
      if (needs.stream && u % 3 == 0) {
        m.source = std::make_shared<Chunks>(message, u % 5 == 0);  // streamed; now and then it fails
      } else if (needs.content) {
        m.content = {{0, message}};
      }
      out.push_back(std::move(m));
    }
    // Now and then only the first of the batch is answered; the engine asks for the rest.
    return Verdict::fetched(out, ++n % 3 == 0 ? 1 : SIZE_MAX);
  }
  Verdict search(const cmail::imap::SearchKey& key, const std::vector<std::uint32_t>& view,
                 const std::vector<std::uint32_t>& saved) override {
    known(view);
    auto ctx = cmail::imap::SearchContext::of(view, saved);
    std::vector<cmail::imap::SearchMatch> out;
    for (std::size_t i = 0; i < view.size(); ++i) {
      cmail::imap::MessageView v;
      v.seq = static_cast<std::uint32_t>(i + 1);
      v.uid = view[i];
      v.size = 100;
      if (cmail::imap::matches(key, v, ctx)) out.push_back({v.seq, v.uid, modseq});
    }
    return Verdict::found(out);
  }
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
      if (rounds == 1 && session.n % 5 == 0) s.mailbox_changed();  // a commit elsewhere
    }
    if (closed && s.state() != cmail::imap::Server::State::Logout) std::abort();
    if (s.pending_output().size() > 512 * 1024) std::abort();
    if (s.deadline().budget.count() < 0) std::abort();
  }
  s.receive_eof();
  return 0;
}
