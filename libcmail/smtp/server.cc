// The SMTP server engine (RFC 5321 and extensions): see cmail/smtp/server.h.
#include <cmail/smtp/server.h>

#include <charconv>

namespace cmail::smtp {

namespace {

std::string upper(std::string_view s) {
  std::string r(s);
  for (auto& ch : r) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return r;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

// Replaces bare CR and bare LF inside a line with CRLF, so that stored and relayed messages
// never carry them (SMTP smuggling: only <CRLF>.<CRLF> ended the message, and any line
// boundary the peer hid in a bare LF becomes a real one, dot-stuffed when relayed).
void append_normalized(std::string& out, std::string_view line) {
  if (line.find_first_of("\r\n") == std::string_view::npos) {
    out.append(line);  // the common case
    return;
  }
  for (char c : line) {
    if (c == '\r' || c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
}

constexpr std::size_t kMaxBuffered = 256 * 1024;  // unparsed input held while a verdict waits

}  // namespace

const char* to_string(Server::State s) {
  switch (s) {
    case Server::State::Initial: return "Initial";
    case Server::State::Ready: return "Ready";
    case Server::State::Mail: return "Mail";
    case Server::State::Rcpt: return "Rcpt";
    case Server::State::Data: return "Data";
    case Server::State::Bdat: return "Bdat";
    case Server::State::Auth: return "Auth";
    case Server::State::Closed: return "Closed";
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
    : options_(options), session_(session) {
  info_.tls = options_.tls_active;
  info_.user = options_.authenticated_user;
  // RFC 5321 4.3.1 / 3.1: the greeting.
  out_ += "220 " + options_.hostname + " ESMTP cmail\r\n";
}

Server::~Server() = default;

void Server::consume_output(std::size_t n) {
  out_pos_ += std::min(n, out_.size() - out_pos_);
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
}

std::optional<Event> Server::next_event() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool Server::wants_read() const {
  return state_ != State::Closed && pending_ != Pending::Tls &&
         (pending_ == Pending::None || in_.size() < kMaxBuffered);
}

std::chrono::milliseconds Server::timeout() const {
  return state_ == State::Data || state_ == State::Bdat ? options_.data_timeout
                                                        : options_.command_timeout;
}

void Server::send(const Reply& r) { out_ += r.format(); }

void Server::send(int code, EnhancedCode e, std::string text) { send(reply(code, e, std::move(text))); }

void Server::error(int code, EnhancedCode e, std::string text) {
  send(code, e, std::move(text));
  if (++errors_ >= options_.max_errors)
    close_with(421, {4, 7, 0}, options_.hostname + " Too many errors, closing connection");
}

void Server::close_with(int code, EnhancedCode e, std::string text) {
  if (state_ == State::Closed) return;
  send(code, e, std::move(text));
  if (txn_.has_mail || state_ == State::Data || state_ == State::Bdat) session_.reset();
  state_ = State::Closed;
  in_.clear();
  events_.push_back(Close{});
}

void Server::reset_transaction() {
  bool had = txn_.has_mail;
  txn_ = Transaction{};
  if (had) session_.reset();
}

void Server::receive(std::string_view bytes) {
  if (state_ == State::Closed || pending_ == Pending::Tls) return;  // after STARTTLS: never parsed
  in_.append(bytes);
  process();
}

void Server::receive_eof() {
  eof_ = true;
  if (state_ == State::Closed) return;
  // A message interrupted by the peer is never stored.
  if (txn_.has_mail || state_ == State::Data || state_ == State::Bdat) session_.reset();
  state_ = State::Closed;
  events_.push_back(Close{});
}

void Server::timed_out() {
  // RFC 5321 4.5.3.2: the server may close after its timeout, with 421.
  close_with(421, {4, 4, 2}, options_.hostname + " Timeout exceeded, closing connection");
}

void Server::tls_established(const TlsInfo& tls) {
  info_.tls = true;
  info_.tls_info = tls;
  if (pending_ != Pending::Tls) return;  // implicit TLS: nothing to forget
  // RFC 3207 4.2: discard all knowledge obtained from the client; it must EHLO again.
  pending_ = Pending::None;
  reset_transaction();
  info_.helo.clear();
  info_.esmtp = false;
  info_.user = options_.authenticated_user;
  state_ = State::Initial;
  options_.starttls_available = false;
  in_.clear();
  scan_ = 0;
}

void Server::process() {
  while (state_ != State::Closed && pending_ == Pending::None) {
    if (state_ == State::Data) {
      if (!process_data()) return;
      continue;
    }
    if (state_ == State::Bdat) {
      if (!process_bdat()) return;
      continue;
    }
    std::size_t lf = in_.find('\n', scan_);
    if (lf == std::string::npos) {
      std::size_t limit = state_ == State::Auth || iequals_prefix(in_, "AUTH ") ? options_.max_auth_line
                                                                             : options_.max_command_line;
      if (in_.size() > limit) {
        // RFC 5321 4.5.3.1.4: 500 for an over-long command line; drop it up to its end.
        if (!discarding_) error(500, {5, 5, 2}, "Line too long");
        discarding_ = true;
        in_.clear();
      }
      scan_ = in_.size();
      return;
    }
    std::size_t end = lf > 0 && in_[lf - 1] == '\r' ? lf - 1 : lf;  // CRLF; a bare LF is accepted in commands
    std::string line = in_.substr(0, end);
    in_.erase(0, lf + 1);
    scan_ = 0;
    if (discarding_) {
      discarding_ = false;
      continue;
    }
    std::size_t limit = state_ == State::Auth || iequals_prefix(line, "AUTH ") ? options_.max_auth_line
                                                                            : options_.max_command_line;
    if (line.size() + 2 > limit) {
      error(500, {5, 5, 2}, "Line too long");
      continue;
    }
    if (state_ == State::Auth) {
      // RFC 4954 4: "*" cancels; anything else is a base64 response.
      if (line == "*") {
        sasl_.reset();
        state_ = State::Ready;
        error(501, {5, 0, 0}, "Authentication cancelled");
        continue;
      }
      auto decoded = sasl::base64_decode(line);
      if (!decoded) {
        sasl_.reset();
        state_ = State::Ready;
        error(501, {5, 5, 2}, "Invalid base64 data");
        continue;
      }
      auth_result(sasl_->step(*decoded));
      continue;
    }
    command(line);
  }
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
      else if (iequals_prefix(l, "RECEIVED:")) ++txn_.hops;
      txn_.line_start.clear();
    } else if (txn_.line_start.size() < 10) {
      txn_.line_start += c;
    }
  }
}

bool Server::process_data() {
  std::string chunk;
  std::size_t off = 0;  // bytes of in_ consumed; erased once at the end (no memmove per line)
  auto flush = [&] {
    if (chunk.empty()) return;
    observe(chunk);
    if (!txn_.too_big) session_.data_chunk(chunk);
    chunk.clear();
  };
  for (;;) {
    std::size_t pos = in_.find("\r\n", std::max(off, scan_ > 0 ? scan_ - 1 : 0));
    if (pos == std::string::npos) {
      // No complete line yet. An over-long line is passed on in pieces so that nothing grows
      // without bound; the piece never ends the message (only a whole "." line does).
      std::size_t keep = in_.size() > off && in_.back() == '\r' ? 1 : 0;
      if (in_.size() - off - keep >= options_.max_text_line) {
        txn_.line_too_long = true;
        std::string_view part = std::string_view(in_).substr(off, in_.size() - off - keep);
        if (txn_.data_at_line_start && part.front() == '.') part.remove_prefix(1);
        txn_.size += part.size();
        append_normalized(chunk, part);
        off = in_.size() - keep;
        txn_.data_at_line_start = false;
      }
      if (options_.max_message_size && txn_.size > options_.max_message_size) txn_.too_big = true;
      in_.erase(0, off);
      scan_ = in_.size();
      flush();
      return false;
    }
    std::string_view line = std::string_view(in_).substr(off, pos - off);
    if (txn_.data_at_line_start && line == ".") {  // RFC 5321 4.1.1.4: end of mail data
      in_.erase(0, pos + 2);
      scan_ = 0;
      flush();
      finish_data();
      return true;
    }
    // RFC 5321 4.5.2: a leading "." of a line was added by the client; remove it.
    if (txn_.data_at_line_start && !line.empty() && line.front() == '.') line.remove_prefix(1);
    if (txn_.data_at_line_start && line.size() + 2 > options_.max_text_line) txn_.line_too_long = true;
    txn_.size += line.size() + 2;
    if (options_.max_message_size && txn_.size > options_.max_message_size) txn_.too_big = true;
    append_normalized(chunk, line);
    chunk += "\r\n";
    txn_.data_at_line_start = true;
    off = pos + 2;
    if (chunk.size() >= 64 * 1024) flush();
  }
}

bool Server::process_bdat() {
  if (in_.empty()) return false;
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(txn_.bdat_left, in_.size()));
  std::string_view part = std::string_view(in_).substr(0, n);
  if (!txn_.bdat_error) {
    txn_.size += n;
    if (options_.max_message_size && txn_.size > options_.max_message_size) txn_.too_big = true;
    observe(part);
    if (!txn_.too_big) session_.data_chunk(part);
  }
  in_.erase(0, n);
  txn_.bdat_left -= n;
  if (txn_.bdat_left > 0) return false;
  finish_chunk(static_cast<std::size_t>(txn_.bdat_chunk));
  return true;
}

void Server::finish_chunk(std::size_t chunk_size) {
  // The chunk is complete (RFC 3030 2: the reply comes after all its octets).
  state_ = !txn_.has_mail ? (info_.helo.empty() ? State::Initial : State::Ready)
                          : (txn_.recipients ? State::Rcpt : State::Mail);
  if (txn_.bdat_error) {
    Reply r = std::move(*txn_.bdat_error);
    txn_.bdat_error.reset();
    error(r.code, *r.enhanced, r.lines[0]);
    return;
  }
  if (txn_.bdat_last) return finish_data();
  send(250, {2, 0, 0}, std::to_string(chunk_size) + " octets received");
}

void Server::finish_data() {
  state_ = State::Ready;
  if (txn_.too_big) {
    reset_transaction();
    send(552, {5, 3, 4}, "Message size exceeds fixed maximum message size");  // RFC 1870 6.3
    return;
  }
  if (txn_.line_too_long) {
    reset_transaction();
    send(554, {5, 6, 0}, "Message has lines longer than 998 octets (RFC 5321 4.5.3.1.6)");
    return;
  }
  if (txn_.hops > options_.max_hops) {
    reset_transaction();
    send(554, {5, 4, 6}, "Too many hops (Received headers): mail loop?");  // RFC 5321 6.3
    return;
  }
  pending_ = Pending::DataEnd;
  apply(session_.data_end(info_));
}

void Server::ehlo_reply(bool extended) {
  if (!extended) {
    out_ += "250 " + options_.hostname + "\r\n";
    return;
  }
  std::vector<std::string> lines;
  lines.push_back(options_.hostname);
  lines.push_back("PIPELINING");  // RFC 2920
  lines.push_back(options_.max_message_size ? "SIZE " + std::to_string(options_.max_message_size)
                                            : std::string("SIZE"));  // RFC 1870
  lines.push_back("8BITMIME");             // RFC 6152
  lines.push_back("SMTPUTF8");             // RFC 6531
  lines.push_back("ENHANCEDSTATUSCODES");  // RFC 2034
  if (options_.chunking) {
    lines.push_back("CHUNKING");    // RFC 3030
    lines.push_back("BINARYMIME");  // RFC 3030
  }
  if (options_.dsn) lines.push_back("DSN");  // RFC 3461
  if (options_.starttls_available && !info_.tls) lines.push_back("STARTTLS");  // RFC 3207
  if (options_.auth_enabled && (info_.tls || !options_.auth_requires_tls)) {
    std::string auth = "AUTH";
    for (auto m : sasl::all_mechanisms()) auth += " " + std::string(sasl::mechanism_name(m));
    lines.push_back(auth);  // RFC 4954
  }
  for (std::size_t i = 0; i < lines.size(); ++i)
    out_ += (i + 1 < lines.size() ? "250-" : "250 ") + lines[i] + "\r\n";
}

void Server::command(std::string_view line) {
  std::size_t sp = line.find(' ');
  std::string verb = upper(line.substr(0, sp));
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  const bool greeted = state_ != State::Initial;

  if (verb == "EHLO" || verb == "HELO") {
    // RFC 5321 4.1.1.1: EHLO domain / address-literal. A new EHLO resets the transaction.
    while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
    if (arg.empty() || !valid_domain(arg)) {
      error(501, {5, 5, 4}, "Syntax: " + verb + " hostname");
      return;
    }
    reset_transaction();
    info_.helo = std::string(arg);
    info_.esmtp = verb == "EHLO";
    pending_helo_extended_ = info_.esmtp;
    pending_ = Pending::Helo;
    apply(session_.helo(info_));
    return;
  }
  if (verb == "NOOP") return send(250, {2, 0, 0}, "OK");
  if (verb == "QUIT") {
    // RFC 5321 4.1.1.10: 221, then close; allowed in any state.
    send(221, {2, 0, 0}, options_.hostname + " closing connection");
    reset_transaction();
    state_ = State::Closed;
    in_.clear();
    events_.push_back(Close{});
    return;
  }
  if (verb == "RSET") {
    reset_transaction();
    if (greeted) state_ = State::Ready;
    return send(250, {2, 0, 0}, "OK");
  }
  if (verb == "VRFY") return send(252, {2, 5, 0}, "Cannot VRFY user, but will accept message and attempt delivery");  // RFC 5321 3.5.3
  if (verb == "EXPN") return error(502, {5, 5, 1}, "EXPN not available");
  if (verb == "HELP") return send(214, {2, 0, 0}, "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH");
  if (verb == "STARTTLS") {
    if (info_.tls) return error(503, {5, 5, 1}, "TLS already active");
    if (!options_.starttls_available) return error(502, {5, 5, 1}, "STARTTLS not available");
    if (!arg.empty()) return error(501, {5, 5, 4}, "Syntax: STARTTLS");
    send(220, {2, 0, 0}, "Ready to start TLS");
    // RFC 3207 4.2: bytes after the command belong to the TLS handshake, never to the parser
    // (STARTTLS command injection).
    events_.push_back(StartTls{std::move(in_)});
    in_.clear();
    scan_ = 0;
    pending_ = Pending::Tls;
    return;
  }
  if (verb == "AUTH") {
    if (!greeted) return error(503, {5, 5, 1}, "Send EHLO first");
    if (!options_.auth_enabled) return error(503, {5, 5, 1}, "AUTH not available");
    if (options_.auth_requires_tls && !info_.tls)
      return error(538, {5, 7, 11}, "Encryption required for requested authentication mechanism");  // RFC 4954 6
    if (info_.user) return error(503, {5, 5, 1}, "Already authenticated");  // RFC 4954 4
    if (txn_.has_mail) return error(503, {5, 5, 1}, "AUTH not allowed during a mail transaction");
    std::size_t sp2 = arg.find(' ');
    auto mech = sasl::parse_mechanism(arg.substr(0, sp2));
    if (!mech) return error(504, {5, 5, 4}, "Unrecognized authentication type");
    std::optional<std::string> initial;
    if (sp2 != std::string_view::npos) {
      std::string_view ir = arg.substr(sp2 + 1);
      if (ir == "=") {
        initial = std::string();  // RFC 4954 4: "=" is an empty initial response
      } else {
        initial = sasl::base64_decode(ir);
        if (!initial) return error(501, {5, 5, 2}, "Invalid base64 data");
      }
    }
    sasl_mech_ = *mech;
    sasl_ = std::make_unique<sasl::ServerExchange>(*mech);
    auth_result(sasl_->start(initial ? std::optional<std::string_view>(*initial) : std::nullopt));
    return;
  }
  if (verb == "MAIL") {
    if (!greeted) return error(503, {5, 5, 1}, "Send EHLO first");
    if (txn_.has_mail) return error(503, {5, 5, 1}, "Nested MAIL command");
    if (options_.require_auth && !info_.user) return error(530, {5, 7, 0}, "Authentication required");  // RFC 4954 6
    if (!iequals_prefix(arg, "FROM:")) return error(501, {5, 5, 4}, "Syntax: MAIL FROM:<address>");
    auto parsed = parse_mail_from(arg.substr(5));
    if (auto* e = std::get_if<SyntaxError>(&parsed)) return error(e->reply.code, *e->reply.enhanced, e->reply.lines[0]);
    auto& m = std::get<MailCommand>(parsed);
    if (options_.max_message_size && m.params.size && *m.params.size > options_.max_message_size)
      return error(552, {5, 3, 4}, "Message size exceeds fixed maximum message size");  // RFC 1870 6.1
    if (m.params.body == BodyType::BinaryMime && !options_.chunking)
      return error(555, {5, 5, 4}, "BINARYMIME not supported");
    if (!options_.dsn && (m.params.ret || m.params.envid))
      return error(555, {5, 5, 4}, "DSN not supported");
    txn_ = Transaction{};
    txn_.params = m.params;
    pending_ = Pending::Mail;
    apply(session_.mail(info_, m.path, m.params));
    return;
  }
  if (verb == "RCPT") {
    if (!txn_.has_mail) return error(503, {5, 5, 1}, "Need MAIL before RCPT");
    if (!iequals_prefix(arg, "TO:")) return error(501, {5, 5, 4}, "Syntax: RCPT TO:<address>");
    if (txn_.recipients >= options_.max_recipients) {
      send(452, {4, 5, 3}, "Too many recipients");  // RFC 5321 4.5.3.1.10
      return;
    }
    auto parsed = parse_rcpt_to(arg.substr(3));
    if (auto* e = std::get_if<SyntaxError>(&parsed)) return error(e->reply.code, *e->reply.enhanced, e->reply.lines[0]);
    auto& r = std::get<RcptCommand>(parsed);
    if (!options_.dsn && (r.params.notify || r.params.orcpt)) return error(555, {5, 5, 4}, "DSN not supported");
    pending_ = Pending::Rcpt;
    apply(session_.rcpt(info_, r.path, r.params));
    return;
  }
  if (verb == "DATA") {
    if (!arg.empty()) return error(501, {5, 5, 4}, "Syntax: DATA");
    if (!txn_.has_mail) return error(503, {5, 5, 1}, "Need MAIL command");
    if (txn_.recipients == 0) return error(554, {5, 5, 1}, "No valid recipients");  // RFC 5321 3.3
    if (txn_.params.body == BodyType::BinaryMime || txn_.bdat_used)
      return error(503, {5, 5, 1}, "Use BDAT for this transaction");  // RFC 3030 3
    out_ += "354 End data with <CR><LF>.<CR><LF>\r\n";
    state_ = State::Data;
    txn_.data_at_line_start = true;
    return;
  }
  if (verb == "BDAT") {
    // RFC 3030 2: BDAT chunk-size [LAST]; the chunk's octets follow the command at once and
    // must be read even when the command is refused.
    std::size_t sp2 = arg.find(' ');
    std::string_view num = arg.substr(0, sp2);
    std::string_view rest = sp2 == std::string_view::npos ? std::string_view() : arg.substr(sp2 + 1);
    std::uint64_t size = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), size);
    bool last = !rest.empty() && upper(rest) == "LAST";
    if (num.empty() || ec != std::errc() || p != num.data() + num.size() || (!rest.empty() && !last) ||
        !options_.chunking) {
      // Without a valid size we cannot know where the chunk ends: the stream is lost.
      if (!options_.chunking) return error(502, {5, 5, 1}, "BDAT not available");
      return close_with(501, {5, 5, 4}, "Syntax: BDAT size [LAST]; closing connection");
    }
    txn_.bdat_left = size;
    txn_.bdat_chunk = size;
    txn_.bdat_last = last;
    if (!txn_.has_mail) txn_.bdat_error = reply(503, {5, 5, 1}, "Need MAIL command");
    else if (txn_.recipients == 0) txn_.bdat_error = reply(554, {5, 5, 1}, "No valid recipients");
    txn_.bdat_used = txn_.has_mail;
    state_ = State::Bdat;
    if (size == 0) finish_chunk(0);  // a zero-length chunk is complete at once
    return;
  }
  error(500, {5, 5, 2}, "Command not recognized");
}

void Server::auth_result(const sasl::ServerExchange::Step& step) {
  if (auto* c = std::get_if<sasl::ServerExchange::Challenge>(&step)) {
    state_ = State::Auth;
    out_ += "334 " + sasl::base64_encode(c->data) + "\r\n";  // RFC 4954 4
    return;
  }
  state_ = State::Ready;
  sasl_.reset();
  if (std::get_if<sasl::ServerExchange::Failed>(&step)) {
    // A malformed exchange is a failed authentication to the client (cmail quirk, spec 16.15).
    if (++auth_failures_ >= options_.max_auth_failures)
      return close_with(421, {4, 7, 0}, options_.hostname + " Too many authentication failures");
    return error(535, {5, 7, 8}, "Authentication credentials invalid");
  }
  const auto& done = std::get<sasl::ServerExchange::Done>(step);
  pending_ = Pending::Auth;
  pending_user_ = done.credentials.authcid;
  apply(session_.auth(info_, done.credentials));
}

void Server::apply(const Verdict& v) {
  if (v.kind() == Verdict::Kind::Pending) return;  // complete() comes later
  Pending what = pending_;
  pending_ = Pending::None;
  const bool ok = v.kind() == Verdict::Kind::Accept;
  auto refuse = [&](bool count) {
    if (v.kind() == Verdict::Kind::Failed) {
      session_.log("backend failure: " + v.status().to_string());
      send(451, {4, 3, 0}, "Temporary failure, please try again later");
    } else {
      send(v.reply());
    }
    if (count && ++errors_ >= options_.max_errors)
      close_with(421, {4, 7, 0}, options_.hostname + " Too many errors, closing connection");
  };
  switch (what) {
    case Pending::Helo:
      if (ok) {
        state_ = State::Ready;
        ehlo_reply(pending_helo_extended_);
      } else {
        info_.helo.clear();
        info_.esmtp = false;
        refuse(true);
      }
      break;
    case Pending::Auth:
      if (ok) {
        info_.user = v.text() == "OK" || v.text().empty() ? pending_user_ : v.text();
        send(235, {2, 7, 0}, "Authentication successful");
      } else if (++auth_failures_ >= options_.max_auth_failures) {
        close_with(421, {4, 7, 0}, options_.hostname + " Too many authentication failures");
      } else {
        refuse(true);
      }
      pending_user_.clear();
      break;
    case Pending::Mail:
      if (ok) {
        txn_.has_mail = true;
        state_ = State::Mail;
        send(250, {2, 1, 0}, v.text());
      } else {
        txn_ = Transaction{};
        refuse(true);
      }
      break;
    case Pending::Rcpt:
      if (ok) {
        ++txn_.recipients;
        state_ = State::Rcpt;
        send(250, {2, 1, 5}, v.text());
      } else {
        refuse(true);
      }
      break;
    case Pending::DataEnd: {
      state_ = State::Ready;
      txn_ = Transaction{};  // the session saw data_end: no reset() call
      if (ok) send(250, {2, 0, 0}, v.text());
      else refuse(false);
      break;
    }
    case Pending::Tls:
    case Pending::None:
      break;
  }
}

Status Server::complete(Verdict v) {
  if (pending_ == Pending::None || pending_ == Pending::Tls)
    return Status::invalid_argument("no verdict is pending");
  if (v.kind() == Verdict::Kind::Pending) return Status::invalid_argument("complete() with a pending verdict");
  if (state_ == State::Closed) {
    pending_ = Pending::None;
    return Status();
  }
  apply(v);
  process();  // pipelined input waiting behind the verdict
  return Status();
}

}  // namespace cmail::smtp
