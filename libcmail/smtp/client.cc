// The SMTP client engine: see cmail/smtp/client.h.
#include <cmail/smtp/client.h>

#include <cmail/proto/message.h>

namespace cmail::smtp {

namespace {

std::string upper(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return r;
}

bool has_8bit(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

}  // namespace

std::string dot_stuff(std::string_view m) { return proto::dot_stuffed(m); }  // cmail/proto/message.h

Client::Client(const ClientOptions& options) : options_(options), tls_(options.tls_active) {
  expect_.push_back(Expect::Greeting);
}

void Client::consume_output(std::size_t n) {
  out_pos_ += std::min(n, out_.size() - out_pos_);
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
}

std::optional<ClientEvent> Client::next_client_event() {
  if (events_.empty()) return std::nullopt;
  ClientEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

std::optional<Event> Client::next_event() {
  if (transport_.empty()) return std::nullopt;
  Event e = std::move(transport_.front());
  transport_.pop_front();
  return e;
}

std::chrono::milliseconds Client::timeout() const {
  if (expect_.empty()) return options_.command_timeout;
  switch (expect_.front()) {
    case Expect::Greeting: return options_.greeting_timeout;
    case Expect::DataEnd:
    case Expect::Bdat: return options_.data_end_timeout;
    default: return options_.command_timeout;
  }
}

void Client::send_line(const std::string& line) {
  out_ += line;
  out_ += "\r\n";
}

void Client::fail(FailKind kind, std::optional<Reply> r, std::string reason) {
  if (state_ == State::Closed) return;
  events_.push_back(client_event::Failed{kind, std::move(r), std::move(reason)});
  if (state_ != State::Quitting && kind != FailKind::Connection) send_line("QUIT");  // polite
  state_ = State::Closed;
  expect_.clear();
  transport_.push_back(Close{});
}

void Client::timed_out() { fail(FailKind::Connection, std::nullopt, "timeout waiting for the server"); }

void Client::receive_eof() {
  if (state_ == State::Closed) return;
  if (state_ == State::Quitting) {
    state_ = State::Closed;
    transport_.push_back(Close{});
    return;
  }
  fail(FailKind::Connection, std::nullopt, "connection closed by the server");
}

void Client::tls_established(const TlsInfo&) {
  tls_ = true;
  // RFC 3207 4.2: forget what the server said before TLS and greet again.
  ext_ = Extensions{};
  in_.clear();
  parser_.reset();
  greet();
}

void Client::greet() {
  send_line("EHLO " + options_.helo_name);
  expect_.push_back(Expect::Ehlo);
  state_ = State::Handshake;
}

void Client::receive(std::string_view bytes) {
  if (state_ == State::Closed) return;
  in_.append(bytes);
  for (;;) {
    std::size_t lf = in_.find('\n');
    if (lf == std::string::npos) {
      if (in_.size() > options_.max_reply_line) fail(FailKind::Protocol, std::nullopt, "reply line too long");
      return;
    }
    std::string line = in_.substr(0, lf > 0 && in_[lf - 1] == '\r' ? lf - 1 : lf);
    in_.erase(0, lf + 1);
    if (line.size() > options_.max_reply_line) return fail(FailKind::Protocol, std::nullopt, "reply line too long");
    auto r = parser_.feed(line);
    if (!r) return fail(FailKind::Protocol, std::nullopt, "malformed reply: " + line.substr(0, 80));
    if (!r->has_value()) continue;
    on_reply(**r);
    if (state_ == State::Closed) return;
    if (state_ == State::Handshake && !transport_.empty() && std::holds_alternative<StartTls>(transport_.back()))
      return;  // the rest of the input belongs to TLS
  }
}

void Client::after_ehlo() {
  // TLS first, then AUTH, then Ready.
  if (!tls_ && options_.tls != TlsPolicy::None && ext_.starttls) {
    send_line("STARTTLS");
    expect_.push_back(Expect::StartTls);
    return;
  }
  if (!tls_ && options_.tls == TlsPolicy::Required)
    return fail(FailKind::Implementation, std::nullopt, "TLS is required but the server does not offer STARTTLS");
  if (options_.auth && !authenticated_) {
    if (!tls_ && !options_.auth_without_tls)
      return fail(FailKind::Implementation, std::nullopt, "refusing to send credentials without TLS");
    return start_auth();
  }
  state_ = State::Ready;
  events_.push_back(client_event::Ready{});
}

void Client::start_auth() {
  const auto& c = *options_.auth;
  if (ext_.auth.count("PLAIN")) {  // RFC 4954 4 with an initial response (RFC 4616)
    send_line("AUTH PLAIN " + sasl::base64_encode(sasl::plain_message(c.authzid, c.authcid, c.password)));
    expect_.push_back(Expect::Auth);
  } else if (ext_.auth.count("LOGIN")) {  // draft-murchison-sasl-login: user, then password
    send_line("AUTH LOGIN");
    expect_.push_back(Expect::AuthUser);
  } else {
    fail(FailKind::Implementation, std::nullopt, "the server offers neither AUTH PLAIN nor AUTH LOGIN");
  }
}

void Client::send_rcpt(std::size_t i) {
  const auto& r = env_.recipients[i];
  send_line("RCPT TO:<" + r.to.to_wire() + ">" + format_rcpt_params(r.params));
  expect_.push_back(Expect::Rcpt);
}

void Client::send_data() {
  data_sent_ = true;
  if (options_.chunking && ext_.chunking) {
    // RFC 3030 2: one chunk with LAST; no dot-stuffing. A stored message without a final CRLF
    // gets one, as DATA's codec adds it.
    const bool crlf = message_.empty() || message_.ends_with("\r\n");
    send_line("BDAT " + std::to_string(message_.size() + (crlf ? 0 : 2)) + " LAST");
    out_ += message_;
    if (!crlf) out_ += "\r\n";
    message_.clear();
    expect_.push_back(Expect::Bdat);
    return;
  }
  send_line("DATA");
  expect_.push_back(Expect::Data);
}

Status Client::send_mail(Envelope env, std::string message) {
  if (state_ != State::Ready) return Status::invalid_argument("send_mail() before Ready");
  if (env.recipients.empty()) return Status::invalid_argument("no recipients");
  // Check what the server can take before sending anything.
  bool utf8 = env.from.utf8() || env.params.smtputf8;
  for (const auto& r : env.recipients) utf8 = utf8 || r.to.utf8();
  if (utf8 && !ext_.smtputf8)
    return Status::unsupported("the message needs SMTPUTF8 (RFC 6531) and the server does not offer it");
  if (utf8) env.params.smtputf8 = true;
  if (env.params.body == BodyType::BinaryMime)
    return Status::unsupported("BINARYMIME messages are not relayed");
  if (has_8bit(message) || env.params.body == BodyType::EightBitMime) {
    if (!ext_.eightbitmime)
      return Status::unsupported("the message has 8-bit data and the server does not offer 8BITMIME (RFC 6152 3)");
    env.params.body = BodyType::EightBitMime;
  }
  if (ext_.size) {
    if (*ext_.size > 0 && message.size() > *ext_.size)
      return Status::unsupported("the message (" + std::to_string(message.size()) +
                                 " octets) is larger than the server's SIZE limit " + std::to_string(*ext_.size));
    env.params.size = message.size();  // RFC 1870 4
  } else {
    env.params.size.reset();
  }
  if (!ext_.dsn) {  // RFC 3461: parameters only to servers that announced DSN
    env.params.ret.reset();
    env.params.envid.reset();
    for (auto& r : env.recipients) r.params = {};
  }
  if (!ext_.esmtp) env.params = {};
  env_ = std::move(env);
  message_ = std::move(message);
  rcpt_next_ = 0;
  accepted_.clear();
  mail_ok_ = false;
  data_sent_ = false;
  state_ = State::Transaction;
  send_line("MAIL FROM:<" + env_.from.to_wire() + ">" + format_mail_params(env_.params));
  expect_.push_back(Expect::Mail);
  if (ext_.pipelining) {
    // RFC 2920 3.1: MAIL, every RCPT and DATA in one group; DATA last. BDAT may follow at once
    // (RFC 3030 4.2): the server refuses it when no recipient was accepted.
    for (std::size_t i = 0; i < env_.recipients.size(); ++i) send_rcpt(i);
    send_data();
  }
  return Status();
}

void Client::quit() {
  if (state_ == State::Closed || state_ == State::Quitting) return;
  send_line("QUIT");
  expect_.push_back(Expect::Quit);
  state_ = State::Quitting;
}

void Client::send_body() { out_ += dot_stuff(message_); }

void Client::finish_transaction(const Reply& r) {
  std::vector<std::size_t> accepted = accepted_;
  events_.push_back(client_event::MailResult{r, accepted});
  message_.clear();
  if (r.positive()) {
    state_ = State::Ready;
    events_.push_back(client_event::Ready{});
  } else {
    // After a refusal the transaction may still be open on the server: RSET, then Ready.
    send_line("RSET");
    expect_.push_back(Expect::Rset);
  }
}

void Client::on_reply(const Reply& r) {
  if (expect_.empty()) return fail(FailKind::Protocol, r, "unexpected reply");
  Expect what = expect_.front();
  expect_.pop_front();
  switch (what) {
    case Expect::Greeting:
      if (r.code != 220) return fail(FailKind::Response, r, "greeting refused");
      return greet();
    case Expect::Ehlo:
      if (r.code != 250) {
        send_line("HELO " + options_.helo_name);  // RFC 5321 4.1.1.1: fall back to HELO
        expect_.push_back(Expect::Helo);
        return;
      }
      ext_ = Extensions{};
      ext_.esmtp = true;
      for (std::size_t i = 1; i < r.lines.size(); ++i) {
        std::string l = upper(r.lines[i]);
        std::string kw = l.substr(0, l.find(' '));
        if (kw == "PIPELINING") ext_.pipelining = true;
        else if (kw == "8BITMIME") ext_.eightbitmime = true;
        else if (kw == "SMTPUTF8") ext_.smtputf8 = true;
        else if (kw == "DSN") ext_.dsn = true;
        else if (kw == "CHUNKING") ext_.chunking = true;
        else if (kw == "BINARYMIME") ext_.binarymime = true;
        else if (kw == "STARTTLS") ext_.starttls = true;
        else if (kw == "ENHANCEDSTATUSCODES") ext_.enhanced = true;
        else if (kw == "SIZE") {
          std::uint64_t n = 0;
          if (l.size() > 5) n = std::strtoull(l.c_str() + 5, nullptr, 10);
          ext_.size = n;
        } else if (kw == "AUTH") {
          std::size_t p = 5;
          while (p < l.size()) {
            std::size_t e = l.find(' ', p);
            if (e == std::string::npos) e = l.size();
            if (e > p) ext_.auth.insert(l.substr(p, e - p));
            p = e + 1;
          }
        }
      }
      return after_ehlo();
    case Expect::Helo:
      if (r.code != 250) return fail(FailKind::Response, r, "HELO refused");
      ext_ = Extensions{};
      return after_ehlo();
    case Expect::StartTls:
      if (r.code != 220) {
        if (options_.tls == TlsPolicy::Required) return fail(FailKind::Response, r, "STARTTLS refused");
        ext_.starttls = false;  // go on in plaintext (opportunistic)
        return after_ehlo();
      }
      transport_.push_back(StartTls{std::move(in_)});
      in_.clear();
      return;
    case Expect::AuthUser:
    case Expect::AuthPass:
      if (r.code == 334) {  // the server asks for the user name, then the password
        const auto& c = *options_.auth;
        send_line(sasl::base64_encode(what == Expect::AuthUser ? c.authcid : c.password));
        expect_.push_back(what == Expect::AuthUser ? Expect::AuthPass : Expect::Auth);
        return;
      }
      [[fallthrough]];
    case Expect::Auth:
      if (r.code != 235) return fail(FailKind::Response, r, "authentication failed");
      authenticated_ = true;
      return after_ehlo();
    case Expect::Mail:
      mail_ok_ = r.positive();
      if (!mail_ok_) {
        // Every recipient fails with the MAIL reply. Pipelined RCPT and DATA replies follow.
        for (std::size_t i = 0; i < env_.recipients.size(); ++i)
          events_.push_back(client_event::RcptResult{i, r});
        if (!data_sent_) return finish_transaction(r);
        mail_failure_ = r;
        return;
      }
      if (!ext_.pipelining) send_rcpt(0);
      return;
    case Expect::Rcpt: {
      std::size_t i = rcpt_next_++;
      if (mail_ok_) {
        events_.push_back(client_event::RcptResult{i, r});
        if (r.positive()) accepted_.push_back(i);
        else last_refusal_ = r;
      }
      if (!ext_.pipelining) {
        if (rcpt_next_ < env_.recipients.size()) {
          send_rcpt(rcpt_next_);
        } else if (!accepted_.empty()) {
          send_data();
        } else {
          finish_transaction(last_refusal_);
        }
      }
      return;
    }
    case Expect::Data:
      if (r.code == 354) {
        if (!mail_ok_ || accepted_.empty()) {
          // Pipelined DATA accepted although nothing can be delivered: send an empty message
          // and let the server refuse it (RFC 2920 3.1 says it must not, some do).
          out_ += ".\r\n";
        } else {
          send_body();
        }
        expect_.push_back(Expect::DataEnd);
        return;
      }
      return finish_transaction(!mail_ok_ ? mail_failure_ : accepted_.empty() ? last_refusal_ : r);
    case Expect::DataEnd:
    case Expect::Bdat:
      if (!mail_ok_ || accepted_.empty()) return finish_transaction(!mail_ok_ ? mail_failure_ : last_refusal_);
      return finish_transaction(r);
    case Expect::Rset:
      state_ = State::Ready;
      events_.push_back(client_event::Ready{});
      return;
    case Expect::Quit:
      state_ = State::Closed;
      transport_.push_back(Close{});
      return;
  }
}

}  // namespace cmail::smtp
