// The SMTP server engine (RFC 5321 and extensions): see cmail/smtp/server.h.
#include <cmail/smtp/server.h>

#include <charconv>

namespace cmail::smtp {

namespace {

constexpr std::size_t kChunk = 64 * 1024;  // decoded DATA handed to the Session at a time

using S = Server::State;
using Any = proto::StateSet<S>;

}  // namespace

// The commands, where they may be given, and the 503 text elsewhere. DATA, BDAT and AUTH
// exchanges never reach the table (their input is data or a SASL response), nor does a closed
// session. Finer checks (a nested MAIL, AUTH inside a transaction) are the handlers'.
const std::array<Server::Command, 14> Server::kCommands = {{
    // RFC 5321 4.1.4: EHLO may be given again; it resets the transaction.
    {"EHLO", {S::Initial, S::Ready, S::Mail, S::Rcpt}, "", &Server::cmd_ehlo},
    {"HELO", {S::Initial, S::Ready, S::Mail, S::Rcpt}, "", &Server::cmd_helo},
    {"MAIL", {S::Ready, S::Mail, S::Rcpt}, "Send EHLO first", &Server::cmd_mail},
    {"RCPT", {S::Mail, S::Rcpt}, "Need MAIL before RCPT", &Server::cmd_rcpt},
    {"DATA", {S::Mail, S::Rcpt}, "Need MAIL command", &Server::cmd_data},
    // RFC 3030 2: a chunk's octets follow its command at once and are read in every state.
    {"BDAT", Any::all(), "", &Server::cmd_bdat},
    {"RSET", Any::all(), "", &Server::cmd_rset},
    {"NOOP", Any::all(), "", &Server::cmd_noop},
    {"QUIT", Any::all(), "", &Server::cmd_quit},  // RFC 5321 4.1.1.10: in any state
    {"VRFY", Any::all(), "", &Server::cmd_vrfy},
    {"EXPN", Any::all(), "", &Server::cmd_expn},
    {"HELP", Any::all(), "", &Server::cmd_help},
    {"STARTTLS", Any::all(), "", &Server::cmd_starttls},
    {"AUTH", {S::Ready, S::Mail, S::Rcpt}, "Send EHLO first", &Server::cmd_auth},
}};

const char* to_string(Server::State s) {
  switch (s) {
    case S::Initial: return "Initial";
    case S::Ready: return "Ready";
    case S::Mail: return "Mail";
    case S::Rcpt: return "Rcpt";
    case S::Data: return "Data";
    case S::Bdat: return "Bdat";
    case S::Auth: return "Auth";
    case S::Closed: return "Closed";
  }
  return "?";
}

std::string SessionInfo::protocol() const {
  // RFC 3848 (and RFC 5321 4.4 "with" clause).
  if (!esmtp) return "SMTP";
  std::string p = "ESMTP";
  if (tls) p += "S";
  if (user) p += "A";
  return p;
}

Server::Server(const ServerOptions& options, Session& session)
    : Conversation(proto::LineEnd::CrLfOrLf, options.max_buffered_input),
      options_(options),
      session_(session),
      sasl_("334 ", options.scram) {
  info_.tls = options_.tls_active;
  info_.user = options_.authenticated_user;
  // RFC 5321 4.3.1 / 3.1: the greeting.
  write("220 " + options_.hostname + " ESMTP cmail\r\n");
}

Server::~Server() = default;

bool Server::wants_read() const { return state_ != State::Closed && reading(); }

std::chrono::milliseconds Server::timeout() const {
  return state_ == State::Data || state_ == State::Bdat ? options_.data_timeout : options_.command_timeout;
}

proto::Deadline Server::deadline() const {
  // RFC 5321 4.5.3.2 bounds each wait for the client; these bound each command line and each
  // DATA or BDAT phase as a whole, so that a client that sends a byte before every timeout is
  // still closed (docs/smtp.md#deadlines). Phase numbers: 2n while waiting for a line after
  // the n-th, 2n+1 once part of it arrived; DATA and BDAT keep the 2n of their command.
  using std::chrono::milliseconds;
  if (state_ == State::Data || state_ == State::Bdat) {
    const std::uint64_t got = state_ == State::Bdat ? txn_.bdat_chunk - txn_.bdat_left : txn_.size;
    const auto rate = options_.min_data_rate;
    return {2 * phase_, options_.data_timeout + milliseconds(rate ? got * 1000 / rate : 0)};
  }
  if (state_ == State::Closed || !in_.mid_line()) return {2 * phase_, milliseconds(0)};
  return {2 * phase_ + 1, options_.command_timeout};
}

void Server::send(const Reply& r) { write(r.format()); }

void Server::send(int code, EnhancedCode e, std::string_view text) {
  // "250 2.1.0 text" (RFC 5321 4.2; RFC 2034 2: the enhanced code after the reply code).
  std::string& out = output();
  out += std::to_string(code);
  out += ' ';
  out += e.to_string();
  out += ' ';
  out += text;
  out += "\r\n";
}

void Server::error(int code, EnhancedCode e, std::string_view text) {
  send(code, e, text);
  if (++errors_ >= options_.max_errors)
    close_with(421, {4, 7, 0}, options_.hostname + " Too many errors, closing connection");
}

void Server::close_with(int code, EnhancedCode e, std::string_view text) {
  if (state_ == State::Closed) return;
  send(code, e, text);
  if (txn_.has_mail || state_ == State::Data || state_ == State::Bdat) session_.reset();
  state_ = State::Closed;
  close();
}

void Server::end_transaction() {
  const bool had = txn_.has_mail;
  txn_ = Transaction{};
  if (had) session_.reset();
}

Server::State Server::greeted_state() const { return info_.helo.empty() ? State::Initial : State::Ready; }

void Server::receive(std::string_view bytes) {
  if (accept_input(bytes)) process();
}

void Server::receive_eof() {
  if (state_ == State::Closed) return;
  // A message interrupted by the peer is never stored.
  if (txn_.has_mail || state_ == State::Data || state_ == State::Bdat) session_.reset();
  state_ = State::Closed;
  close();
}

void Server::timed_out() {
  // RFC 5321 4.5.3.2: the server may close after its timeout, with 421.
  close_with(421, {4, 4, 2}, options_.hostname + " Timeout exceeded, closing connection");
}

void Server::tls_established(const TlsInfo& tls) {
  info_.tls = true;
  info_.tls_info = tls;
  sasl_.set_channel_binding(tls.tls_exporter);  // RFC 9266: SCRAM-SHA-256-PLUS from now on
  if (!finish_tls()) return;  // implicit TLS: nothing to forget
  // RFC 3207 4.2: discard all knowledge obtained from the client; it must EHLO again.
  end_transaction();
  info_.helo.clear();
  info_.esmtp = false;
  info_.user = options_.authenticated_user;
  sasl_.reset();
  state_ = State::Initial;
  options_.starttls_available = false;
}

void Server::process() {
  for (;;) {
    if (state_ == State::Closed || awaiting_.active() || tls_pending()) return;
    switch (state_) {
      case State::Data: read_data(); break;
      case State::Bdat: read_bdat(); break;
      default: break;
    }
    if (state_ == State::Data || state_ == State::Bdat) return;  // waiting for more data
    if (state_ == State::Closed || awaiting_.active() || tls_pending()) return;
    if (!next_command()) return;
  }
}

bool Server::next_command() {
  std::string_view line;
  switch (next_command_line(options_.max_command_line, options_.max_auth_line, state_ == State::Auth, line)) {
    case proto::LineReader::Result::NeedMore:
      return false;
    case proto::LineReader::Result::TooLong:
      ++phase_;  // the rest, dropped as it arrives, is a phase of its own
      error(500, {5, 5, 2}, "Line too long");  // RFC 5321 4.5.3.1.4; the rest is dropped
      return true;
    case proto::LineReader::Result::Line:
      break;
  }
  ++phase_;
  if (state_ == State::Auth) auth_step(sasl_.respond(line));
  else command(line);
  return true;
}

void Server::command(std::string_view line) {
  auto [verb, arg] = proto::split_command(line);
  const Command* c = proto::find_command(kCommands, verb);
  if (!c) return error(500, {5, 5, 2}, "Command not recognized");
  if (!c->states.contains(state_)) return error(503, {5, 5, 1}, c->out_of_state);
  (this->*c->run)(arg);
}

void Server::observe(std::string_view bytes) {
  // Tracks header lines across chunks: counts Received fields (RFC 5321 6.3 loop detection)
  // until the empty line that ends the header section.
  for (char c : bytes) {
    if (!txn_.in_header) return;
    if (c == '\n') {
      std::string_view l = txn_.line_start;
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
      if (l.empty()) txn_.in_header = false;
      else if (proto::starts_with_upper(l, "RECEIVED:")) ++txn_.hops;
      txn_.line_start.clear();
    } else if (txn_.line_start.size() < 10) {
      txn_.line_start += c;
    }
  }
}

void Server::stream(std::string_view bytes) {
  if (bytes.empty()) return;
  observe(bytes);
  // RFC 2045 2.7, 2.8: neither 7bit nor 8bit data holds NUL; only BINARYMIME may (RFC 3030 3).
  // Refused at the end, never stored or relayed: a next hop that drops NULs would read
  // something else than what was checked here (smuggling).
  if (txn_.params.body != BodyType::BinaryMime && bytes.find('\0') != std::string_view::npos) txn_.nul = true;
  txn_.size += bytes.size();
  // RFC 1870 6.3: past the limit the rest is read and dropped; 552 at the end.
  if (options_.max_message_size && txn_.size > options_.max_message_size) txn_.too_big = true;
  if (!txn_.too_big) session_.data_chunk(bytes);
}

void Server::read_data() {
  for (;;) {
    auto progress = txn_.data.decode(in_, chunk_, kChunk);
    stream(chunk_);
    chunk_.clear();
    if (progress == proto::DotDecoder::Progress::Full) continue;
    if (progress == proto::DotDecoder::Progress::End) finish_data();
    return;
  }
}

void Server::read_bdat() {
  if (txn_.bdat_left > 0) {
    std::string_view part = in_.peek(static_cast<std::size_t>(std::min<std::uint64_t>(txn_.bdat_left, SIZE_MAX)));
    if (part.empty()) return;
    if (!txn_.bdat_error) stream(part);
    txn_.bdat_left -= part.size();
    in_.consume(part.size());
    if (txn_.bdat_left > 0) return;
  }
  finish_chunk();
}

void Server::finish_chunk() {
  // RFC 3030 2: the chunk is complete; its reply comes after all its octets.
  state_ = !txn_.has_mail ? greeted_state() : (txn_.recipients ? State::Rcpt : State::Mail);
  if (txn_.bdat_error) {
    Reply r = std::move(*txn_.bdat_error);
    txn_.bdat_error.reset();
    return error(r.code, *r.enhanced, r.lines[0]);
  }
  if (txn_.bdat_last) return finish_data();
  send(250, {2, 0, 0}, std::to_string(txn_.bdat_chunk) + " octets received");
}

void Server::finish_data() {
  state_ = State::Ready;
  if (txn_.too_big) {
    end_transaction();
    return send(552, {5, 3, 4}, "Message size exceeds fixed maximum message size");  // RFC 1870 6.3
  }
  if (txn_.data.long_line()) {
    end_transaction();
    return send(554, {5, 6, 0}, "Message has lines longer than 998 octets (RFC 5321 4.5.3.1.6)");
  }
  if (txn_.nul) {
    end_transaction();
    return send(554, {5, 6, 0}, "Message contains NUL octets, allowed only with BODY=BINARYMIME");
  }
  if (txn_.hops > options_.max_hops) {
    end_transaction();
    return send(554, {5, 4, 6}, "Too many hops (Received headers): mail loop?");  // RFC 5321 6.3
  }
  awaiting_.begin(Decision::DataEnd);
  apply(session_.data_end(info_));
}

void Server::ehlo_reply(bool extended) {
  if (!extended) return write("250 " + options_.hostname + "\r\n");
  // Written in place, a line at a time (every connection asks for it).
  char size[32] = "SIZE ";  // RFC 1870: SIZE, or SIZE and the limit
  std::size_t size_len = 4;
  if (options_.max_message_size)
    size_len = static_cast<std::size_t>(std::to_chars(size + 5, size + sizeof size, options_.max_message_size).ptr - size);
  std::string auth;
  std::string_view lines[14];
  std::size_t n = 0;
  lines[n++] = options_.hostname;
  lines[n++] = "PIPELINING";  // RFC 2920
  lines[n++] = std::string_view(size, size_len);
  lines[n++] = "8BITMIME";             // RFC 6152
  lines[n++] = "SMTPUTF8";             // RFC 6531
  lines[n++] = "ENHANCEDSTATUSCODES";  // RFC 2034
  if (options_.chunking) {
    lines[n++] = "CHUNKING";    // RFC 3030
    lines[n++] = "BINARYMIME";  // RFC 3030
  }
  if (options_.dsn) lines[n++] = "DSN";  // RFC 3461
  if (options_.starttls_available && !info_.tls) lines[n++] = "STARTTLS";  // RFC 3207
  if (options_.requiretls && info_.tls) lines[n++] = "REQUIRETLS";  // RFC 8689 3: offered only inside TLS
  if (options_.auth_enabled && (info_.tls || !options_.auth_requires_tls)) {
    auth = "AUTH " + sasl_.offered_names();  // RFC 4954
    lines[n++] = auth;
  }
  for (std::size_t i = 0; i < n; ++i) {
    write(i + 1 < n ? "250-" : "250 ");
    write(lines[i]);
    write("\r\n");
  }
}

void Server::greet(std::string_view arg, bool extended) {
  // RFC 5321 4.1.1.1: EHLO domain / address-literal. A new EHLO resets the transaction.
  while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
  if (arg.empty() || !valid_domain(arg))
    return error(501, {5, 5, 4}, extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
  end_transaction();
  info_.helo = std::string(arg);
  info_.esmtp = extended;
  helo_extended_ = extended;
  awaiting_.begin(Decision::Helo);
  apply(session_.helo(info_));
}

void Server::cmd_ehlo(std::string_view arg) { greet(arg, true); }
void Server::cmd_helo(std::string_view arg) { greet(arg, false); }
void Server::cmd_noop(std::string_view) { send(250, {2, 0, 0}, "OK"); }

void Server::cmd_quit(std::string_view) {
  send(221, {2, 0, 0}, options_.hostname + " closing connection");
  end_transaction();
  state_ = State::Closed;
  close();
}

void Server::cmd_rset(std::string_view) {
  end_transaction();
  if (state_ != State::Initial) state_ = State::Ready;
  send(250, {2, 0, 0}, "OK");
}

void Server::cmd_vrfy(std::string_view) {
  send(252, {2, 5, 0}, "Cannot VRFY user, but will accept message and attempt delivery");  // RFC 5321 3.5.3
}

void Server::cmd_expn(std::string_view) { error(502, {5, 5, 1}, "EXPN not available"); }

void Server::cmd_help(std::string_view) {
  send(214, {2, 0, 0}, "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH");
}

void Server::cmd_starttls(std::string_view arg) {
  if (info_.tls) return error(503, {5, 5, 1}, "TLS already active");
  if (!options_.starttls_available) return error(502, {5, 5, 1}, "STARTTLS not available");
  if (!arg.empty()) return error(501, {5, 5, 4}, "Syntax: STARTTLS");
  send(220, {2, 0, 0}, "Ready to start TLS");
  // RFC 3207 4.2: the bytes after the command belong to the TLS handshake, never to the parser
  // (STARTTLS command injection); the kernel hands them over.
  start_tls();
}

void Server::cmd_auth(std::string_view arg) {
  if (!options_.auth_enabled) return error(503, {5, 5, 1}, "AUTH not available");
  if (options_.auth_requires_tls && !info_.tls)
    return error(538, {5, 7, 11}, "Encryption required for requested authentication mechanism");  // RFC 4954 6
  if (info_.user) return error(503, {5, 5, 1}, "Already authenticated");  // RFC 4954 4
  if (txn_.has_mail) return error(503, {5, 5, 1}, "AUTH not allowed during a mail transaction");
  auth_step(sasl_.start(arg));
}

void Server::auth_step(const sasl::ServerAuth::Step& step) {
  using A = sasl::ServerAuth;
  if (auto* c = std::get_if<A::Challenge>(&step)) {
    state_ = State::Auth;
    return write(c->line);  // RFC 4954 4: 334 SP challenge
  }
  if (auto* l = std::get_if<A::ScramLookup>(&step)) {  // RFC 5802 5: the user's salt and keys
    state_ = State::Auth;
    awaiting_.begin(Decision::ScramLookup);
    return apply(session_.scram_credentials(info_, l->authcid));
  }
  state_ = State::Ready;
  if (auto* d = std::get_if<A::Done>(&step)) {
    awaiting_.begin(Decision::Auth);
    return apply(session_.auth(info_, d->credentials));
  }
  if (auto* c = std::get_if<A::ScramChecked>(&step)) {
    awaiting_.begin(Decision::Auth);
    return apply(session_.scram_auth(info_, c->result));
  }
  if (std::holds_alternative<A::Cancelled>(step)) return error(501, {5, 0, 0}, "Authentication cancelled");
  if (std::holds_alternative<A::UnknownMechanism>(step)) return error(504, {5, 5, 4}, "Unrecognized authentication type");
  if (std::holds_alternative<A::BadSyntax>(step)) return error(501, {5, 5, 4}, "Syntax: AUTH mechanism [initial-response]");
  if (std::holds_alternative<A::BadBase64>(step)) return error(501, {5, 5, 2}, "Invalid base64 data");
  // A malformed exchange is a failed authentication to the client
  // (docs/compatibility.md#users-sasl-plain).
  auth_failed();
}

void Server::auth_failed() {
  if (++auth_failures_ >= options_.max_auth_failures)
    return close_with(421, {4, 7, 0}, options_.hostname + " Too many authentication failures");
  error(535, {5, 7, 8}, "Authentication credentials invalid");
}

void Server::cmd_mail(std::string_view arg) {
  if (txn_.has_mail) return error(503, {5, 5, 1}, "Nested MAIL command");
  if (options_.require_auth && !info_.user) return error(530, {5, 7, 0}, "Authentication required");  // RFC 4954 6
  if (!proto::starts_with_upper(arg, "FROM:")) return error(501, {5, 5, 4}, "Syntax: MAIL FROM:<address>");
  auto parsed = parse_mail_from(arg.substr(5), syntax());
  if (auto* e = std::get_if<SyntaxError>(&parsed)) return error(e->reply.code, *e->reply.enhanced, e->reply.lines[0]);
  auto& m = std::get<MailCommand>(parsed);
  if (options_.max_message_size && m.params.size && *m.params.size > options_.max_message_size)
    return error(552, {5, 3, 4}, "Message size exceeds fixed maximum message size");  // RFC 1870 6.1
  if (m.params.body == BodyType::BinaryMime && !options_.chunking) return error(555, {5, 5, 4}, "BINARYMIME not supported");
  if (!options_.dsn && (m.params.ret || m.params.envid)) return error(555, {5, 5, 4}, "DSN not supported");
  if (m.params.requiretls) {
    if (!options_.requiretls) return error(555, {5, 5, 4}, "REQUIRETLS not supported");
    // RFC 8689 3: the option belongs to sessions that use TLS only (530, as RFC 3207 4 refuses
    // commands before STARTTLS; 5.7.10 "Encryption Needed", RFC 5248).
    if (!info_.tls) return error(530, {5, 7, 10}, "REQUIRETLS needs a TLS connection");
  }
  txn_ = Transaction{};
  txn_.params = m.params;
  awaiting_.begin(Decision::Mail);
  apply(session_.mail(info_, m.path, m.params));
}

void Server::cmd_rcpt(std::string_view arg) {
  if (!proto::starts_with_upper(arg, "TO:")) return error(501, {5, 5, 4}, "Syntax: RCPT TO:<address>");
  if (txn_.recipients >= options_.max_recipients) return send(452, {4, 5, 3}, "Too many recipients");  // RFC 5321 4.5.3.1.10
  auto parsed = parse_rcpt_to(arg.substr(3), syntax());
  if (auto* e = std::get_if<SyntaxError>(&parsed)) return error(e->reply.code, *e->reply.enhanced, e->reply.lines[0]);
  auto& r = std::get<RcptCommand>(parsed);
  if (!options_.dsn && (r.params.notify || r.params.orcpt)) return error(555, {5, 5, 4}, "DSN not supported");
  awaiting_.begin(Decision::Rcpt);
  apply(session_.rcpt(info_, r.path, r.params));
}

void Server::cmd_data(std::string_view arg) {
  if (!arg.empty()) return error(501, {5, 5, 4}, "Syntax: DATA");
  if (txn_.recipients == 0) return error(554, {5, 5, 1}, "No valid recipients");  // RFC 5321 3.3
  if (txn_.params.body == BodyType::BinaryMime || txn_.bdat_used)
    return error(503, {5, 5, 1}, "Use BDAT for this transaction");  // RFC 3030 3
  write("354 End data with <CR><LF>.<CR><LF>\r\n");
  state_ = State::Data;
  txn_.data = proto::DotDecoder(options_.max_text_line);
}

void Server::cmd_bdat(std::string_view arg) {
  // RFC 3030 2: BDAT chunk-size [LAST]; the chunk's octets follow the command at once and
  // must be read even when the command is refused.
  auto [num, rest] = proto::split_command(arg);
  std::uint64_t size = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), size);
  const bool last = proto::equals_upper(rest, "LAST");
  if (!options_.chunking) return error(502, {5, 5, 1}, "BDAT not available");
  if (num.empty() || ec != std::errc() || p != num.data() + num.size() || (!rest.empty() && !last))
    // Without a valid size nobody knows where the chunk ends: the stream is lost.
    return close_with(501, {5, 5, 4}, "Syntax: BDAT size [LAST]; closing connection");
  txn_.bdat_left = size;
  txn_.bdat_chunk = size;
  txn_.bdat_last = last;
  if (!txn_.has_mail) txn_.bdat_error = reply(503, {5, 5, 1}, "Need MAIL command");
  else if (txn_.recipients == 0) txn_.bdat_error = reply(554, {5, 5, 1}, "No valid recipients");
  txn_.bdat_used = txn_.has_mail;
  state_ = State::Bdat;
  if (size == 0) finish_chunk();  // a zero-length chunk is complete at once
}

void Server::apply(const Verdict& v) {
  if (v.kind() == Verdict::Kind::Pending) return;  // complete() comes later
  const Decision what = awaiting_.end();
  const bool ok = v.accepted();
  auto shut = [&] {  // the transaction ends unfinished, nothing more is read
    if (txn_.has_mail || state_ == State::Data || state_ == State::Bdat) session_.reset();
    txn_ = Transaction{};
    state_ = State::Closed;
    close();
  };
  if (v.disconnects()) return shut();
  auto refuse = [&](bool count) {
    if (v.kind() == Verdict::Kind::Failed) {
      session_.log("backend failure: " + v.status().to_string());
      send(451, {4, 3, 0}, "Temporary failure, please try again later");
    } else if (v.reply().code == 421) {  // RFC 5321 3.8: 421 closes the channel
      send(v.reply());
      return shut();
    } else {
      send(v.reply());
    }
    if (count && ++errors_ >= options_.max_errors)
      close_with(421, {4, 7, 0}, options_.hostname + " Too many errors, closing connection");
  };
  switch (what) {
    case Decision::Helo:
      if (ok) {
        state_ = State::Ready;
        ehlo_reply(helo_extended_);
      } else {
        info_.helo.clear();
        info_.esmtp = false;
        refuse(true);
      }
      return;
    case Decision::ScramLookup:
      if (ok) return auth_step(sasl_.scram_credentials(v.scram_credentials()));
      sasl_.reset();  // refused before the exchange went on: as a refused AUTH
      state_ = State::Ready;
      [[fallthrough]];
    case Decision::Auth:
      if (ok && v.identity() && !v.identity()->empty()) {
        info_.user = *v.identity();  // the identity the Session vouches for, never reply text
        return send(235, {2, 7, 0}, "Authentication successful");
      }
      if (ok || v.kind() == Verdict::Kind::Failed) {
        // RFC 4954 6: 454 for a temporary failure; accept() without an identity is one too.
        session_.log(ok ? "auth: accepted without an identity (use Verdict::authenticated)"
                        : "auth: backend failure: " + v.status().to_string());
        return error(454, {4, 7, 0}, "Temporary authentication failure");
      }
      if (++auth_failures_ >= options_.max_auth_failures)
        return close_with(421, {4, 7, 0}, options_.hostname + " Too many authentication failures");
      return refuse(true);
    case Decision::Mail:
      if (ok) {
        txn_.has_mail = true;
        state_ = State::Mail;
        return send(250, {2, 1, 0}, v.text());
      }
      txn_ = Transaction{};
      return refuse(true);
    case Decision::Rcpt:
      if (ok) {
        ++txn_.recipients;
        state_ = State::Rcpt;
        return send(250, {2, 1, 5}, v.text());
      }
      return refuse(true);
    case Decision::DataEnd:
      state_ = State::Ready;
      txn_ = Transaction{};  // the session saw data_end: no reset() call
      if (ok) {
        ++messages_;
        return send(250, {2, 0, 0}, v.text());
      }
      return refuse(false);
  }
}

Status Server::complete(Verdict v) {
  if (Status st = proto::check_completion(awaiting_.active(), v.kind()); !st.ok()) return st;
  if (state_ == State::Closed) {
    awaiting_.cancel();
    return Status();
  }
  apply(v);
  process();  // pipelined input waiting behind the verdict
  return Status();
}

}  // namespace cmail::smtp
