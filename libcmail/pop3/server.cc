// The POP3 server engine (RFC 1939, 2449, 2595, 3206, 5034): see cmail/pop3/server.h.
#include <cmail/pop3/server.h>

#include <charconv>

namespace cmail::pop3 {

namespace {

constexpr std::size_t kAhead = 64 * 1024;  // encoded message output kept ready

using S = Server::State;

std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

// RFC 1939 3: the commands of each state. Out of state, the -ERR text given (counted as a
// failed command). SASL responses, the UPDATE state and a closed session never get here.
const std::array<Server::Command, 15> Server::kCommands = {{
    {"CAPA", {S::Authorization, S::Transaction}, "", &Server::cmd_capa},  // RFC 2449 5
    {"QUIT", {S::Authorization, S::Transaction}, "", &Server::cmd_quit},
    {"USER", {S::Authorization}, "Already logged in", &Server::cmd_user},
    {"PASS", {S::Authorization}, "Already logged in", &Server::cmd_pass},
    {"AUTH", {S::Authorization}, "Already logged in", &Server::cmd_auth},  // RFC 5034 4
    {"STLS", {S::Authorization}, "Already logged in", &Server::cmd_stls},  // RFC 2595 4
    {"APOP", {S::Authorization}, "Already logged in", &Server::cmd_apop},
    {"STAT", {S::Transaction}, "Log in first", &Server::cmd_stat},
    {"LIST", {S::Transaction}, "Log in first", &Server::cmd_list},
    {"UIDL", {S::Transaction}, "Log in first", &Server::cmd_uidl},
    {"RETR", {S::Transaction}, "Log in first", &Server::cmd_retr},
    {"TOP", {S::Transaction}, "Log in first", &Server::cmd_top},
    {"DELE", {S::Transaction}, "Log in first", &Server::cmd_dele},
    {"RSET", {S::Transaction}, "Log in first", &Server::cmd_rset},
    {"NOOP", {S::Transaction}, "Log in first", &Server::cmd_noop},
}};

std::string_view to_string(RespCode c) {
  switch (c) {
    case RespCode::None: return "";
    case RespCode::InUse: return "IN-USE";          // RFC 2449 8.1.1
    case RespCode::LoginDelay: return "LOGIN-DELAY";  // RFC 2449 8.1.2
    case RespCode::SysTemp: return "SYS/TEMP";      // RFC 3206 4
    case RespCode::SysPerm: return "SYS/PERM";      // RFC 3206 4
    case RespCode::Auth: return "AUTH";             // RFC 3206 5
  }
  return "";
}

const char* to_string(Server::State s) {
  switch (s) {
    case Server::State::Authorization: return "Authorization";
    case Server::State::Sasl: return "Sasl";
    case Server::State::Transaction: return "Transaction";
    case Server::State::Update: return "Update";
    case Server::State::Closed: return "Closed";
  }
  return "?";
}

Verdict Verdict::maildrop(std::string identity, std::vector<Listing> listing) {
  Verdict v(Kind::Accept);
  v.identity_ = std::move(identity);
  v.listing_ = std::move(listing);
  return v;
}
Verdict Verdict::message(std::string text) {
  Verdict v(Kind::Accept);
  v.text_ = std::move(text);
  return v;
}
Verdict Verdict::message(std::shared_ptr<proto::Source> source) {
  Verdict v(Kind::Accept);
  v.source_ = std::move(source);
  return v;
}
Verdict Verdict::accept() { return Verdict(Kind::Accept); }
Verdict Verdict::reject(RespCode code, std::string text) {
  Verdict v(Kind::Reject);
  v.code_ = code;
  v.text_ = std::move(text);
  return v;
}

std::string_view top_part(std::string_view m, std::uint64_t lines) {
  TopCut cut(lines);
  return m.substr(0, cut.take(m));
}

void TopCut::line_end() {
  if (header_) {
    if (line_start_) {  // the empty line that ends the header (RFC 5322 2.1) belongs to it
      header_ = false;
      if (lines_ == 0) finishing_ = true;
    }
  } else if (lines_ > 0 && --lines_ == 0) {
    finishing_ = true;
  }
  line_start_ = true;
}

std::size_t TopCut::take(std::string_view piece) {
  if (done_) return 0;
  for (std::size_t i = 0; i < piece.size(); ++i) {
    const char c = piece[i];
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') {  // CRLF: one line end, already counted at its CR
        if (finishing_) {
          done_ = true;
          return i + 1;
        }
        continue;
      }
      if (finishing_) {
        done_ = true;
        return i;
      }
    }
    if (c == '\r' || c == '\n') {
      line_end();
      if (c == '\r') {
        after_cr_ = true;
      } else if (finishing_) {
        done_ = true;
        return i + 1;
      }
      continue;
    }
    line_start_ = false;
  }
  return piece.size();
}

Server::Server(const ServerOptions& options, Session& session)
    : Conversation(proto::LineEnd::CrLfOrLf, options.max_buffered_input),
      options_(options),
      session_(session),
      tls_(options.tls_active) {
  // RFC 1939 4: the greeting. No APOP timestamp: APOP is not offered.
  ok(options_.hostname + " POP3 server ready");
}

Server::~Server() = default;

void Server::ok(std::string_view text) {
  std::string& out = output();
  out += "+OK";
  if (!text.empty()) {
    out += ' ';
    out += text;
  }
  out += "\r\n";
}

void Server::err(RespCode code, std::string_view text) {
  std::string& out = output();
  out += "-ERR ";
  if (code != RespCode::None) {  // RFC 2449 8: a response code in brackets first
    out += '[';
    out += to_string(code);
    out += "] ";
  }
  out += text;
  out += "\r\n";
}

void Server::error(std::string_view text, RespCode code) {
  err(code, text);
  if (++errors_ >= options_.max_errors) close_with(RespCode::None, "Too many errors, closing connection");
}

void Server::close_with(RespCode code, std::string_view text) {
  if (state_ == State::Closed) return;
  if (!sending_) err(code, text);  // never inside a multi-line response
  sending_.reset();
  state_ = State::Closed;
  close();
}

void Server::consume_output(std::size_t n) {
  Conversation::consume_output(n);
  if (sending_) {
    fill();
    if (!sending_) process();  // pipelined commands waited behind the response
  }
}

bool Server::wants_read() const { return state_ != State::Update && reading(); }

std::vector<std::size_t> Server::deleted() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < deleted_.size(); ++i)
    if (deleted_[i]) out.push_back(i);
  return out;
}

std::uint64_t Server::total_size() const {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < listing_.size(); ++i)
    if (!deleted_[i]) total += listing_[i].size;
  return total;
}

std::size_t Server::remaining() const {
  std::size_t count = 0;
  for (bool d : deleted_) count += !d;
  return count;
}

void Server::receive(std::string_view bytes) {
  // After QUIT nothing more is read (RFC 1939 6); after STLS the bytes belong to TLS.
  if (state_ == State::Update) return;
  if (accept_input(bytes)) process();
}

void Server::receive_eof() {
  if (state_ == State::Closed) return;
  // RFC 1939 6: a session that ends without QUIT does not enter UPDATE; nothing is deleted.
  state_ = State::Closed;
  sending_.reset();
  close();
}

void Server::timed_out() {
  // RFC 1939 3: the autologout timer; no UPDATE state, so nothing is deleted.
  close_with(RespCode::None, "Autologout: idle for too long, closing connection");
}

void Server::tls_established(const TlsInfo& info) {
  tls_ = true;
  sasl_.set_channel_binding(info.tls_exporter);  // RFC 9266: SCRAM-SHA-256-PLUS from now on
  if (!finish_tls()) return;  // implicit TLS: nothing to forget
  // RFC 2595 4: after the handshake the server discards what it learned from the client,
  // including a USER given before STLS (docs/compatibility.md#pop3-stls).
  state_ = State::Authorization;
  user_given_.reset();
  sasl_.reset();
  options_.starttls_available = false;
}

proto::Deadline Server::deadline() const {
  // 2n while waiting for a line after the n-th, 2n+1 once part of it arrived.
  if (state_ == State::Closed || !in_.mid_line()) return {2 * phase_, std::chrono::milliseconds(0)};
  return {2 * phase_ + 1, options_.idle_timeout};
}

void Server::process() {
  while (state_ != State::Closed && state_ != State::Update && !awaiting_.active() && !sending_ &&
         !tls_pending()) {
    std::string_view line;
    switch (next_command_line(options_.max_command_line, options_.max_auth_line, state_ == State::Sasl, line)) {
      case proto::LineReader::Result::NeedMore:
        return;
      case proto::LineReader::Result::TooLong:
        ++phase_;  // the rest, dropped as it arrives, is a phase of its own
        error("Line too long");  // one -ERR, the rest of the line is dropped (RFC 2449 4)
        continue;
      case proto::LineReader::Result::Line:
        break;
    }
    ++phase_;
    if (state_ == State::Sasl) sasl_step(sasl_.respond(line));
    else command(line);
  }
}

std::string Server::capabilities() const {
  // RFC 2449 5: only what works now, in this state.
  std::string c = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
  if (state_ == State::Authorization) {
    if (options_.starttls_available && !tls_) c += "STLS\r\n";  // RFC 2595 4
    if (login_allowed()) {
      c += "USER\r\n";                                  // RFC 2449 6.8
      c += "SASL " + sasl_.offered_names() + "\r\n";  // RFC 5034 5
    }
  }
  c += "IMPLEMENTATION " + options_.implementation + "\r\n.\r\n";  // RFC 2449 6.9
  return c;
}

std::optional<std::size_t> Server::message_arg(std::string_view arg, bool deleted_ok) {
  auto n = parse_number(arg);
  if (!n) {
    error("Syntax: a message number is required");
    return std::nullopt;
  }
  if (*n == 0 || *n > listing_.size()) {
    error("No such message, the maildrop has " + std::to_string(listing_.size()) + " messages");
    return std::nullopt;
  }
  std::size_t i = static_cast<std::size_t>(*n - 1);
  // RFC 1939 5: a message marked as deleted may not be referred to.
  if (deleted_[i] && !deleted_ok) {
    error("Message " + std::to_string(*n) + " is deleted");
    return std::nullopt;
  }
  return i;
}

void Server::command(std::string_view line) {
  auto [verb, arg] = proto::split_command(line);  // RFC 1939 3: keyword SP argument
  const Command* c = proto::find_command(kCommands, verb);
  if (!c) return error("Unknown command");
  if (!c->states.contains(state_)) return error(c->out_of_state);
  (this->*c->run)(arg);
}

void Server::cmd_capa(std::string_view arg) {
  if (!arg.empty()) return error("Syntax: CAPA");
  write(capabilities());
}

void Server::cmd_quit(std::string_view arg) {
  if (!arg.empty()) return error("Syntax: QUIT");
  if (state_ == State::Authorization) {  // RFC 1939 4: QUIT before login
    ok(options_.hostname + " POP3 server signing off");
    state_ = State::Closed;
    return close();
  }
  // RFC 1939 6: QUIT in TRANSACTION enters UPDATE; the +OK comes after the deletions.
  state_ = State::Update;
  in_.clear();
  awaiting_.begin(Decision::Update);
  apply(session_.update(deleted()));
}

void Server::cmd_user(std::string_view arg) {  // RFC 1939 7
  if (!login_allowed()) return error("Log in only after STLS: this server requires TLS", RespCode::Auth);
  if (arg.empty()) return error("Syntax: USER name");
  user_given_ = std::string(arg);
  ok("Send PASS");
}

void Server::cmd_pass(std::string_view arg) {  // RFC 1939 7: the rest of the line, spaces included
  if (!login_allowed()) return error("Log in only after STLS: this server requires TLS", RespCode::Auth);
  if (!user_given_) return error("Send USER first");
  sasl::Credentials creds{"", std::move(*user_given_), std::string(arg)};
  user_given_.reset();
  start_login(creds);
}

void Server::cmd_auth(std::string_view arg) {  // RFC 5034 4
  if (!login_allowed()) return error("Log in only after STLS: this server requires TLS", RespCode::Auth);
  if (arg.empty()) {
    // AUTH without a mechanism lists them (RFC 1734's form, which clients still probe).
    return write("+OK SASL mechanisms follow\r\n" + sasl_.offered_names("\r\n") + "\r\n.\r\n");
  }
  sasl_step(sasl_.start(arg));
}

void Server::cmd_stls(std::string_view arg) {  // RFC 2595 4
  if (tls_) return error("TLS is already active");
  if (!options_.starttls_available) return error("STLS not available");
  if (!arg.empty()) return error("Syntax: STLS");
  ok("Begin TLS negotiation");
  // The bytes after the command belong to the TLS handshake, never to the parser (command
  // injection, RFC 2595 4 / RFC 3207 4.2); the kernel hands them over.
  user_given_.reset();
  start_tls();
}

void Server::cmd_apop(std::string_view) { error("APOP is not offered; use USER/PASS or AUTH"); }

void Server::cmd_stat(std::string_view arg) {
  if (!arg.empty()) return error("Syntax: STAT");
  ok(std::to_string(remaining()) + " " + std::to_string(total_size()));
}

void Server::cmd_list(std::string_view arg) { scan_listing(arg, false); }
void Server::cmd_uidl(std::string_view arg) { scan_listing(arg, true); }

void Server::scan_listing(std::string_view arg, bool uidl) {
  // RFC 1939 5 (LIST) and 7 (UIDL): one message, or every message not marked deleted.
  auto field = [&](std::size_t i) { return uidl ? listing_[i].uid : std::to_string(listing_[i].size); };
  if (!arg.empty()) {
    auto i = message_arg(arg);
    if (!i) return;
    return ok(std::to_string(*i + 1) + " " + field(*i));
  }
  std::string r = "+OK " + std::to_string(remaining()) + " messages (" + std::to_string(total_size()) + " octets)\r\n";
  for (std::size_t i = 0; i < listing_.size(); ++i)
    if (!deleted_[i]) r += std::to_string(i + 1) + " " + field(i) + "\r\n";
  write(r + ".\r\n");
}

void Server::cmd_retr(std::string_view arg) { retrieve(arg, std::nullopt); }

void Server::cmd_top(std::string_view arg) {  // RFC 1939 7: TOP msg n
  auto [number, lines] = proto::split_command(arg);
  auto n = parse_number(lines);
  if (!n) return error("Syntax: TOP message lines");
  retrieve(number, *n);
}

void Server::retrieve(std::string_view number, std::optional<std::uint64_t> top) {
  auto i = message_arg(number);
  if (!i) return;
  pending_top_ = top;
  pending_index_ = *i;
  awaiting_.begin(Decision::Retrieve);
  apply(session_.retrieve(*i));
}

void Server::cmd_dele(std::string_view arg) {
  auto i = message_arg(arg, true);
  if (!i) return;
  if (deleted_[*i]) return error("Message " + std::to_string(*i + 1) + " is already deleted");
  deleted_[*i] = true;
  ok("Message " + std::to_string(*i + 1) + " deleted");
}

void Server::cmd_rset(std::string_view arg) {
  if (!arg.empty()) return error("Syntax: RSET");
  deleted_.assign(listing_.size(), false);  // RFC 1939 5: unmark every message
  ok("Maildrop has " + std::to_string(listing_.size()) + " messages (" + std::to_string(total_size()) + " octets)");
}

void Server::cmd_noop(std::string_view arg) {
  if (!arg.empty()) return error("Syntax: NOOP");
  ok("");
}

void Server::sasl_step(const sasl::ServerAuth::Step& step) {
  using A = sasl::ServerAuth;
  if (auto* c = std::get_if<A::Challenge>(&step)) {
    state_ = State::Sasl;
    return write(c->line);  // RFC 5034 4: "+" SP challenge
  }
  if (auto* l = std::get_if<A::ScramLookup>(&step)) {  // RFC 5802 5: the user's salt and keys
    state_ = State::Sasl;
    awaiting_.begin(Decision::ScramLookup);
    return apply(session_.scram_credentials(l->authcid));
  }
  state_ = State::Authorization;
  if (auto* d = std::get_if<A::Done>(&step)) return start_login(d->credentials);
  if (auto* c = std::get_if<A::ScramChecked>(&step)) {
    awaiting_.begin(Decision::Login);
    return apply(session_.scram_login(c->result));
  }
  // RFC 5034 4: the client cancels; the server answers -ERR.
  if (std::holds_alternative<A::Cancelled>(step)) return err(RespCode::None, "Authentication canceled");
  if (std::holds_alternative<A::UnknownMechanism>(step)) return error("Unrecognized authentication mechanism");
  if (std::holds_alternative<A::BadSyntax>(step)) return error("Syntax: AUTH mechanism [initial-response]");
  if (std::holds_alternative<A::BadBase64>(step)) return error("Invalid base64 data");
  // A malformed exchange is a failed login to the client (docs/compatibility.md#users-sasl-plain).
  awaiting_.begin(Decision::Login);
  apply(Verdict::reject(RespCode::Auth, "Authentication failed"));
}

void Server::start_login(const sasl::Credentials& creds) {
  awaiting_.begin(Decision::Login);
  apply(session_.login(creds));
}

void Server::apply(Verdict v) {
  if (v.kind() == Verdict::Kind::Pending) return;  // complete() comes later
  const Decision what = awaiting_.end();
  const bool accepted = v.accepted();
  auto refuse = [&] {
    if (v.kind() == Verdict::Kind::Failed) {
      session_.log("backend failure: " + v.status().to_string());
      err(RespCode::SysTemp, "Temporary failure, try again later");
    } else {
      err(v.code(), v.text());
    }
  };
  switch (what) {
    case Decision::ScramLookup:
      if (accepted) return sasl_step(sasl_.scram_credentials(v.scram_credentials()));
      sasl_.reset();  // refused before the exchange went on: as a refused login
      [[fallthrough]];
    case Decision::Login:
      if (accepted && !v.identity().empty()) {
        user_ = v.identity();  // who the Session says logged in, never taken from reply text
        listing_ = v.take_listing();
        deleted_.assign(listing_.size(), false);
        state_ = State::Transaction;
        ok("Logged in, maildrop has " + std::to_string(listing_.size()) + " messages (" +
           std::to_string(total_size()) + " octets)");
        return;
      }
      state_ = State::Authorization;
      if (accepted) {  // a maildrop without an identity: the Session's mistake, not a login
        session_.log("login: accepted without an identity");
        err(RespCode::SysTemp, "Temporary failure, try again later");
      } else {
        refuse();
      }
      if (++login_failures_ >= options_.max_login_failures) {
        // One reply per command: the rejection above is the last line, then the connection ends.
        state_ = State::Closed;
        close();
      }
      return;
    case Decision::Retrieve: {
      if (!accepted) return refuse();
      auto s = std::make_unique<Sending>();
      s->source = v.take_source();
      if (s->source) {
        if (pending_top_) s->top.emplace(*pending_top_);
      } else {
        s->text = v.take_text();
        s->part = pending_top_ ? top_part(s->text, *pending_top_) : std::string_view(s->text);
        s->stuffer = std::make_unique<proto::DotStuffer>(s->part);
      }
      // RFC 1939 7: RETR's +OK may give the size; TOP's says nothing about it.
      if (pending_top_) ok("Top of message follows");
      else ok(std::to_string(listing_[pending_index_].size) + " octets");
      sending_ = std::move(s);
      fill();
      return;
    }
    case Decision::Update: {
      std::size_t n = listing_.size() - remaining();
      if (accepted) {
        ok(options_.hostname + " POP3 server signing off (" + std::to_string(n) + " messages deleted)");
      } else {
        // RFC 1939 6: the deletions were not made; the maildrop is as it was.
        if (v.kind() == Verdict::Kind::Failed) session_.log("update failed: " + v.status().to_string());
        err(v.kind() == Verdict::Kind::Reject ? v.code() : RespCode::SysTemp,
            "Some deleted messages not removed, try again later");
      }
      state_ = State::Closed;
      close();
      return;
    }
  }
}

void Server::fill() {
  while (sending_ && output_size() < kAhead) {
    Sending& s = *sending_;
    if (s.stuffer) {
      if (!s.stuffer->encode(output(), kAhead)) sending_.reset();
      continue;
    }
    s.chunk.clear();
    if (Status st = s.source->read(kAhead, s.chunk); !st.ok()) {
      // The +OK is out and part of the message may be: no reply can say so now (RFC 1939 has
      // none), and ending the message would make the client take a truncated one as whole.
      session_.log("retrieve failed while sending: " + st.to_string());
      sending_.reset();
      state_ = State::Closed;
      close();
      return;
    }
    std::string_view piece = s.chunk;
    if (s.top) piece = piece.substr(0, s.top->take(piece));
    s.encoder.add(piece, output());
    if (s.chunk.empty() || (s.top && s.top->done())) {
      s.encoder.finish(output());
      sending_.reset();
    }
  }
}

Status Server::complete(Verdict v) {
  if (Status st = proto::check_completion(awaiting_.active(), v.kind()); !st.ok()) return st;
  if (state_ == State::Closed) {
    awaiting_.cancel();
    return Status();
  }
  apply(std::move(v));
  process();  // pipelined input waiting behind the verdict
  return Status();
}

}  // namespace cmail::pop3
