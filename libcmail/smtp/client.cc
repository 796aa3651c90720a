// The SMTP client engine: see cmail/smtp/client.h.
#include <cmail/smtp/client.h>

#include <cmail/proto/ascii.h>
#include <cmail/proto/message.h>

namespace cmail::smtp {

namespace {

// What a reply line may hold at most; the kernel's input bound follows from it.
std::size_t input_bound(const ClientOptions& o) { return std::max<std::size_t>(o.max_reply_line * 2, 64 * 1024); }

bool has_8bit(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

}  // namespace

Client::Client(const ClientOptions& options)
    : Conversation(proto::LineEnd::CrLfOrLf, input_bound(options)), options_(options), tls_(options.tls_active) {
  expect_.push_back(Expect::Greeting);
}

std::optional<ClientEvent> Client::next_client_event() {
  if (events_.empty()) return std::nullopt;
  ClientEvent e = std::move(events_.front());
  events_.pop_front();
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

void Client::send_line(std::string_view line) {
  std::string& out = output();
  out += line;
  out += "\r\n";
}

void Client::fail(FailKind kind, std::optional<Reply> r, std::string reason) {
  if (state_ == State::Closed) return;
  events_.push_back(client_event::Failed{kind, std::move(r), std::move(reason)});
  if (state_ != State::Quitting && kind != FailKind::Connection) send_line("QUIT");  // polite
  state_ = State::Closed;
  expect_.clear();
  close();
}

void Client::timed_out() { fail(FailKind::Connection, std::nullopt, "timeout waiting for the server"); }

void Client::receive_eof() {
  if (state_ == State::Closed) return;
  if (state_ == State::Quitting) {
    state_ = State::Closed;
    close();
    return;
  }
  fail(FailKind::Connection, std::nullopt, "connection closed by the server");
}

void Client::tls_established(const TlsInfo&) {
  tls_ = true;
  if (!finish_tls()) return;  // implicit TLS: the greeting is still to come
  // RFC 3207 4.2: forget what the server said before TLS and greet again.
  ext_ = Extensions{};
  parser_.reset();
  greet();
}

void Client::greet() {
  send_line("EHLO " + options_.helo_name);
  expect_.push_back(Expect::Ehlo);
  state_ = State::Handshake;
}

void Client::receive(std::string_view bytes) {
  if (state_ == State::Closed || !accept_input(bytes)) return;
  while (state_ != State::Closed && !tls_pending()) {
    std::string_view line;
    switch (in_.next_line(options_.max_reply_line, line)) {
      case proto::LineReader::Result::NeedMore:
        return;
      case proto::LineReader::Result::TooLong:
        return fail(FailKind::Protocol, std::nullopt, "reply line too long");
      case proto::LineReader::Result::Line:
        break;
    }
    auto r = parser_.feed(line);
    if (!r) return fail(FailKind::Protocol, std::nullopt, "malformed reply: " + std::string(line.substr(0, 80)));
    if (r->has_value()) on_reply(**r);
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
  auto mech = sasl::choose_mechanism(ext_.auth);  // PLAIN, else LOGIN
  if (!mech) return fail(FailKind::Implementation, std::nullopt, "the server offers neither AUTH PLAIN nor AUTH LOGIN");
  sasl_.emplace(*mech, *options_.auth);
  std::string line = "AUTH " + std::string(sasl::mechanism_name(*mech));
  // RFC 4954 4: an initial response saves a round trip ("=" would be an empty one).
  if (auto ir = sasl_->initial_response()) line += " " + sasl::base64_encode(*ir);
  send_line(line);
  expect_.push_back(Expect::Auth);
}

void Client::on_auth(const Reply& r) {
  if (r.code == 334) {  // RFC 4954 4: a base64 challenge, answered with a base64 line
    auto challenge = sasl::base64_decode(r.lines.empty() ? "" : r.lines[0]);
    if (!challenge) return fail(FailKind::Protocol, r, "malformed AUTH challenge");
    send_line(sasl::base64_encode(sasl_->respond(*challenge)));
    expect_.push_back(Expect::Auth);
    return;
  }
  sasl_.reset();
  if (r.code != 235) return fail(FailKind::Response, r, "authentication failed");
  authenticated_ = true;
  after_ehlo();
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
    write(message_);
    if (!crlf) write("\r\n");
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
  // RFC 8689 4.2.1: a REQUIRETLS message goes over TLS only, to a server that offers REQUIRETLS.
  if (env.params.requiretls && (!tls_ || !ext_.requiretls))
    return Status::unsupported(tls_ ? "REQUIRETLS support required: the server does not offer REQUIRETLS"
                                    : "REQUIRETLS support required: the connection does not use TLS");
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

void Client::send_body() {
  // RFC 5321 4.5.2, with the one dot-stuffing codec (cmail/proto/message.h).
  proto::DotStuffer(message_).encode(output(), message_.size() + 1);
}

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

void Client::on_ehlo(const Reply& r) {
  // RFC 5321 4.1.1.1: one keyword (and parameters) per line after the first.
  ext_ = Extensions{};
  ext_.esmtp = true;
  for (std::size_t i = 1; i < r.lines.size(); ++i) {
    std::string l = proto::ascii_upper(r.lines[i]);
    std::string kw = l.substr(0, l.find(' '));
    if (kw == "PIPELINING") ext_.pipelining = true;
    else if (kw == "8BITMIME") ext_.eightbitmime = true;
    else if (kw == "SMTPUTF8") ext_.smtputf8 = true;
    else if (kw == "DSN") ext_.dsn = true;
    else if (kw == "CHUNKING") ext_.chunking = true;
    else if (kw == "BINARYMIME") ext_.binarymime = true;
    else if (kw == "STARTTLS") ext_.starttls = true;
    else if (kw == "ENHANCEDSTATUSCODES") ext_.enhanced = true;
    else if (kw == "REQUIRETLS") ext_.requiretls = true;  // RFC 8689 3
    else if (kw == "SIZE") ext_.size = l.size() > 5 ? std::strtoull(l.c_str() + 5, nullptr, 10) : 0;  // RFC 1870 4
    else if (kw == "AUTH") {
      for (std::size_t p = 5; p < l.size();) {
        std::size_t e = std::min(l.find(' ', p), l.size());
        if (e > p) ext_.auth.insert(l.substr(p, e - p));
        p = e + 1;
      }
    }
  }
  after_ehlo();
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
      return on_ehlo(r);
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
      // RFC 3207 4.2: what follows the 220 is the server's part of the handshake; the kernel
      // hands it to the transport with StartTls.
      start_tls();
      return;
    case Expect::Auth:
      return on_auth(r);
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
          write(".\r\n");
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
      close();
      return;
  }
}

}  // namespace cmail::smtp
