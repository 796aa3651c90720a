// The POP3 server engine (RFC 1939, 2449, 2595, 3206, 5034): see cmail/pop3/server.h.
#include <cmail/pop3/server.h>

#include <charconv>

namespace cmail::pop3 {

namespace {

constexpr std::size_t kMaxBuffered = 64 * 1024;  // unparsed input held while a verdict waits
constexpr std::size_t kAhead = 64 * 1024;        // encoded message output kept ready

std::string upper(std::string_view s) {
  std::string r(s);
  for (auto& ch : r) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return r;
}

// RFC 1939 3: keywords and arguments are separated by a single space.
std::pair<std::string_view, std::string_view> split_word(std::string_view s) {
  std::size_t sp = s.find(' ');
  if (sp == std::string_view::npos) return {s, {}};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The end of the line starting at `pos` and where the next one starts (CRLF, CR or LF).
std::pair<std::size_t, std::size_t> line_at(std::string_view m, std::size_t pos) {
  std::size_t end = m.find_first_of("\r\n", pos);
  if (end == std::string_view::npos) return {m.size(), m.size()};
  std::size_t next = m[end] == '\r' && end + 1 < m.size() && m[end + 1] == '\n' ? end + 2 : end + 1;
  return {end, next};
}

}  // namespace

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

Verdict Verdict::maildrop(std::vector<Listing> listing) {
  Verdict v(Kind::Accept);
  v.listing_ = std::move(listing);
  return v;
}
Verdict Verdict::message(std::string text) {
  Verdict v(Kind::Accept);
  v.text_ = std::move(text);
  return v;
}
Verdict Verdict::accept() { return Verdict(Kind::Accept); }
Verdict Verdict::reject(RespCode code, std::string text) {
  Verdict v(Kind::Reject);
  v.code_ = code;
  v.text_ = std::move(text);
  return v;
}
Verdict Verdict::pending() { return Verdict(Kind::Pending); }
Verdict Verdict::failed(Status st) {
  Verdict v(Kind::Failed);
  v.status_ = std::move(st);
  return v;
}

std::string_view top_part(std::string_view m, std::uint64_t lines) {
  std::size_t pos = 0;
  while (pos < m.size()) {  // the header, up to and including the empty line
    auto [end, next] = line_at(m, pos);
    bool empty = end == pos;
    pos = next;
    if (empty) break;
  }
  for (std::uint64_t i = 0; i < lines && pos < m.size(); ++i) pos = line_at(m, pos).second;
  return m.substr(0, pos);
}

Server::Server(const ServerOptions& options, Session& session)
    : options_(options), session_(session), tls_(options.tls_active) {
  // RFC 1939 4: the greeting. No APOP timestamp: APOP is not offered.
  ok(options_.hostname + " POP3 server ready");
}

Server::~Server() = default;

void Server::ok(std::string_view text) {
  out_ += "+OK";
  if (!text.empty()) {
    out_ += ' ';
    out_ += text;
  }
  out_ += "\r\n";
}

void Server::err(RespCode code, std::string_view text) {
  out_ += "-ERR ";
  if (code != RespCode::None) {  // RFC 2449 8: a response code in brackets first
    out_ += '[';
    out_ += to_string(code);
    out_ += "] ";
  }
  out_ += text;
  out_ += "\r\n";
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
  in_.clear();
  events_.push_back(Close{});
}

void Server::consume_output(std::size_t n) {
  out_pos_ += std::min(n, out_.size() - out_pos_);
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ > kAhead) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  if (sending_) {
    fill();
    if (!sending_) process();  // pipelined commands waited behind the response
  }
}

std::optional<Event> Server::next_event() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool Server::wants_read() const {
  return state_ != State::Closed && state_ != State::Update && pending_ != Pending::Tls &&
         in_.size() < kMaxBuffered;
}

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

void Server::receive(std::string_view bytes) {
  // After STLS the bytes belong to TLS; after QUIT nothing more is read (RFC 1939 6).
  if (state_ == State::Closed || state_ == State::Update || pending_ == Pending::Tls) return;
  in_.append(bytes);
  process();
}

void Server::receive_eof() {
  if (state_ == State::Closed) return;
  // RFC 1939 6: a session that ends without QUIT does not enter UPDATE; nothing is deleted.
  state_ = State::Closed;
  sending_.reset();
  in_.clear();
  events_.push_back(Close{});
}

void Server::timed_out() {
  // RFC 1939 3: the autologout timer; no UPDATE state, so nothing is deleted.
  close_with(RespCode::None, "Autologout: idle for too long, closing connection");
}

void Server::tls_established(const TlsInfo&) {
  tls_ = true;
  if (pending_ != Pending::Tls) return;  // implicit TLS: nothing to forget
  // RFC 2595 4: after the handshake the server discards what it learned from the client,
  // including a USER given before STLS (cmail kept it, spec 16.13).
  pending_ = Pending::None;
  state_ = State::Authorization;
  user_.reset();
  sasl_.reset();
  options_.starttls_available = false;
  in_.clear();
  scan_ = 0;
}

void Server::process() {
  while (state_ != State::Closed && state_ != State::Update && pending_ == Pending::None && !sending_) {
    const bool auth_line = state_ == State::Sasl || (in_.size() >= 5 && upper(in_.substr(0, 5)) == "AUTH ");
    const std::size_t limit = auth_line ? options_.max_auth_line : options_.max_command_line;
    std::size_t lf = in_.find('\n', scan_);
    if (lf == std::string::npos) {
      if (in_.size() > limit) {
        // An over-long line: one -ERR, then drop it up to its end (RFC 2449 4 limits lines).
        if (!discarding_) error("Line too long");
        discarding_ = true;
        in_.clear();
      }
      scan_ = in_.size();
      return;
    }
    std::size_t end = lf > 0 && in_[lf - 1] == '\r' ? lf - 1 : lf;  // CRLF; a bare LF is accepted
    std::string line = in_.substr(0, end);
    in_.erase(0, lf + 1);
    scan_ = 0;
    if (discarding_) {
      discarding_ = false;
      continue;
    }
    if (line.size() + 2 > limit) {
      error("Line too long");
      continue;
    }
    if (state_ == State::Sasl) {
      sasl_response(line);
    } else {
      command(line);
    }
  }
}

std::string Server::capabilities() const {
  // RFC 2449 5: only what works now, in this state.
  std::string c = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
  if (state_ == State::Authorization) {
    if (options_.starttls_available && !tls_) c += "STLS\r\n";  // RFC 2595 4
    if (login_allowed()) {
      c += "USER\r\n";  // RFC 2449 6.8
      c += "SASL";      // RFC 5034 5
      for (auto m : sasl::all_mechanisms()) c += " " + std::string(sasl::mechanism_name(m));
      c += "\r\n";
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
  auto [word, arg] = split_word(line);
  const std::string verb = upper(word);
  const bool authorization = state_ == State::Authorization;

  if (verb == "CAPA") {  // RFC 2449 5: in every state
    if (!arg.empty()) return error("Syntax: CAPA");
    out_ += capabilities();
    return;
  }
  if (verb == "QUIT") {
    if (!arg.empty()) return error("Syntax: QUIT");
    if (authorization) {  // RFC 1939 4: QUIT before login
      ok(options_.hostname + " POP3 server signing off");
      state_ = State::Closed;
      in_.clear();
      events_.push_back(Close{});
      return;
    }
    // RFC 1939 6: QUIT in TRANSACTION enters UPDATE; the +OK comes after the deletions.
    state_ = State::Update;
    in_.clear();
    pending_ = Pending::Update;
    apply(session_.update(deleted()));
    return;
  }

  if (authorization) {
    if (verb == "USER") {  // RFC 1939 7
      if (!login_allowed()) return error("Log in only after STLS: this server requires TLS", RespCode::Auth);
      if (arg.empty()) return error("Syntax: USER name");
      user_ = std::string(arg);
      return ok("Send PASS");
    }
    if (verb == "PASS") {  // RFC 1939 7: the rest of the line, spaces included
      if (!login_allowed()) return error("Log in only after STLS: this server requires TLS", RespCode::Auth);
      if (!user_) return error("Send USER first");
      sasl::Credentials creds{"", std::move(*user_), std::string(arg)};
      user_.reset();
      return start_login(creds);
    }
    if (verb == "AUTH") {  // RFC 5034 4
      if (!login_allowed()) return error("Log in only after STLS: this server requires TLS", RespCode::Auth);
      if (arg.empty()) {
        // AUTH without a mechanism lists them (RFC 1734's form, which clients still probe).
        std::string list = "+OK SASL mechanisms follow\r\n";
        for (auto m : sasl::all_mechanisms()) list += std::string(sasl::mechanism_name(m)) + "\r\n";
        out_ += list + ".\r\n";
        return;
      }
      auto [name, rest] = split_word(arg);
      auto mech = sasl::parse_mechanism(name);
      if (!mech) return error("Unrecognized authentication mechanism");
      if (rest.find(' ') != std::string_view::npos) return error("Syntax: AUTH mechanism [initial-response]");
      std::optional<std::string> initial;
      if (!rest.empty()) {
        if (rest == "=") {
          initial = std::string();  // RFC 5034 4: "=" is an empty initial response
        } else {
          initial = sasl::base64_decode(rest);
          if (!initial) return error("Invalid base64 data");
        }
      }
      sasl_ = std::make_unique<sasl::ServerExchange>(*mech);
      return sasl_step(sasl_->start(initial ? std::optional<std::string_view>(*initial) : std::nullopt));
    }
    if (verb == "STLS") {  // RFC 2595 4
      if (tls_) return error("TLS is already active");
      if (!options_.starttls_available) return error("STLS not available");
      if (!arg.empty()) return error("Syntax: STLS");
      ok("Begin TLS negotiation");
      // The bytes after the command belong to the TLS handshake, never to the parser
      // (command injection, RFC 2595 4 / RFC 3207 4.2).
      events_.push_back(StartTls{std::move(in_)});
      in_.clear();
      scan_ = 0;
      user_.reset();
      pending_ = Pending::Tls;
      return;
    }
    if (verb == "APOP") return error("APOP is not offered; use USER/PASS or AUTH");
    if (verb == "STAT" || verb == "LIST" || verb == "RETR" || verb == "DELE" || verb == "NOOP" ||
        verb == "RSET" || verb == "TOP" || verb == "UIDL")
      return error("Log in first");
    return error("Unknown command");
  }

  // TRANSACTION (RFC 1939 5).
  if (verb == "STAT") {
    if (!arg.empty()) return error("Syntax: STAT");
    std::size_t count = 0;
    for (bool d : deleted_) count += !d;
    return ok(std::to_string(count) + " " + std::to_string(total_size()));
  }
  if (verb == "LIST" || verb == "UIDL") {
    const bool uidl = verb == "UIDL";
    auto field = [&](std::size_t i) { return uidl ? listing_[i].uid : std::to_string(listing_[i].size); };
    if (!arg.empty()) {
      auto i = message_arg(arg);
      if (!i) return;
      return ok(std::to_string(*i + 1) + " " + field(*i));
    }
    std::size_t count = 0;
    for (bool d : deleted_) count += !d;
    std::string r = "+OK " + std::to_string(count) + " messages (" + std::to_string(total_size()) +
                    " octets)\r\n";
    for (std::size_t i = 0; i < listing_.size(); ++i)
      if (!deleted_[i]) r += std::to_string(i + 1) + " " + field(i) + "\r\n";
    out_ += r + ".\r\n";
    return;
  }
  if (verb == "RETR" || verb == "TOP") {
    std::string_view num = arg;
    pending_top_.reset();
    if (verb == "TOP") {  // RFC 1939 7: TOP msg n
      auto [m, lines] = split_word(arg);
      auto n = parse_number(lines);
      if (!n) return error("Syntax: TOP message lines");
      num = m;
      pending_top_ = *n;
    }
    auto i = message_arg(num);
    if (!i) return;
    pending_index_ = *i;
    pending_ = Pending::Retrieve;
    apply(session_.retrieve(*i));
    return;
  }
  if (verb == "DELE") {
    auto i = message_arg(arg, true);
    if (!i) return;
    if (deleted_[*i]) return error("Message " + std::to_string(*i + 1) + " is already deleted");
    deleted_[*i] = true;
    return ok("Message " + std::to_string(*i + 1) + " deleted");
  }
  if (verb == "RSET") {
    if (!arg.empty()) return error("Syntax: RSET");
    deleted_.assign(listing_.size(), false);  // RFC 1939 5: unmark every message
    return ok("Maildrop has " + std::to_string(listing_.size()) + " messages (" +
              std::to_string(total_size()) + " octets)");
  }
  if (verb == "NOOP") {
    if (!arg.empty()) return error("Syntax: NOOP");
    return ok("");
  }
  if (verb == "USER" || verb == "PASS" || verb == "AUTH" || verb == "STLS" || verb == "APOP")
    return error("Already logged in");
  error("Unknown command");
}

void Server::sasl_response(std::string_view line) {
  if (line == "*") {  // RFC 5034 4: the client cancels; the server answers -ERR
    sasl_.reset();
    state_ = State::Authorization;
    return err(RespCode::None, "Authentication canceled");
  }
  auto decoded = sasl::base64_decode(line);
  if (!decoded) {
    sasl_.reset();
    state_ = State::Authorization;
    return error("Invalid base64 data");
  }
  sasl_step(sasl_->step(*decoded));
}

void Server::sasl_step(const sasl::ServerExchange::Step& step) {
  if (auto* c = std::get_if<sasl::ServerExchange::Challenge>(&step)) {
    state_ = State::Sasl;
    out_ += "+ " + sasl::base64_encode(c->data) + "\r\n";  // RFC 5034 4: "+" SP challenge
    return;
  }
  state_ = State::Authorization;
  sasl_.reset();
  if (std::get_if<sasl::ServerExchange::Failed>(&step)) {
    // A malformed exchange is a failed login to the client (cmail quirk, spec 16.15).
    Verdict v = Verdict::reject(RespCode::Auth, "Authentication failed");
    pending_ = Pending::Login;
    return apply(std::move(v));
  }
  start_login(std::get<sasl::ServerExchange::Done>(step).credentials);
}

void Server::start_login(const sasl::Credentials& creds) {
  pending_ = Pending::Login;
  apply(session_.login(creds));
}

void Server::apply(Verdict v) {
  if (v.kind() == Verdict::Kind::Pending) return;  // complete() comes later
  const Pending what = pending_;
  pending_ = Pending::None;
  const bool accepted = v.kind() == Verdict::Kind::Accept;
  auto refuse = [&] {
    if (v.kind() == Verdict::Kind::Failed) {
      session_.log("backend failure: " + v.status().to_string());
      err(RespCode::SysTemp, "Temporary failure, try again later");
    } else {
      err(v.code(), v.text());
    }
  };
  switch (what) {
    case Pending::Login:
      if (accepted) {
        listing_ = v.take_listing();
        deleted_.assign(listing_.size(), false);
        state_ = State::Transaction;
        ok("Logged in, maildrop has " + std::to_string(listing_.size()) + " messages (" +
           std::to_string(total_size()) + " octets)");
        return;
      }
      state_ = State::Authorization;
      refuse();
      if (++login_failures_ >= options_.max_login_failures) {
        // One reply per command: the rejection above is the last line, then the connection ends.
        state_ = State::Closed;
        in_.clear();
        events_.push_back(Close{});
      }
      return;
    case Pending::Retrieve: {
      if (!accepted) return refuse();
      auto s = std::make_unique<Sending>();
      s->text = v.take_text();
      s->part = pending_top_ ? top_part(s->text, *pending_top_) : std::string_view(s->text);
      s->stuffer = std::make_unique<proto::DotStuffer>(s->part);
      // RFC 1939 7: RETR's +OK may give the size; TOP's says nothing about it.
      if (pending_top_) ok("Top of message follows");
      else ok(std::to_string(listing_[pending_index_].size) + " octets");
      sending_ = std::move(s);
      fill();
      return;
    }
    case Pending::Update: {
      std::size_t n = 0;
      for (bool d : deleted_) n += d;
      if (accepted) {
        ok(options_.hostname + " POP3 server signing off (" + std::to_string(n) + " messages deleted)");
      } else {
        // RFC 1939 6: the deletions were not made; the maildrop is as it was.
        if (v.kind() == Verdict::Kind::Failed) session_.log("update failed: " + v.status().to_string());
        err(v.kind() == Verdict::Kind::Reject ? v.code() : RespCode::SysTemp,
            "Some deleted messages not removed, try again later");
      }
      state_ = State::Closed;
      events_.push_back(Close{});
      return;
    }
    case Pending::Tls:
    case Pending::None:
      return;
  }
}

void Server::fill() {
  while (sending_ && out_.size() - out_pos_ < kAhead) {
    if (!sending_->stuffer->encode(out_, kAhead)) sending_.reset();
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
  apply(std::move(v));
  process();  // pipelined input waiting behind the verdict
  return Status();
}

}  // namespace cmail::pop3
