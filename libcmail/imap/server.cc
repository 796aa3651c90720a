// The IMAP server engine (RFC 9051, RFC 3501): see cmail/imap/server.h.
#include <cmail/imap/server.h>

#include <cmail/proto/ascii.h>

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

namespace cmail::imap {

namespace {

Options parser_options(const ServerOptions& o) {
  Options p;
  p.limits = o.limits;
  // The engine holds literals to their limits itself once they are announced (take_piece):
  // limits.max_literal, or max_append for APPEND's message, which streams past the parser.
  p.limits.max_literal = std::numeric_limits<std::uint64_t>::max();
  p.utf8 = true;  // RFC 9051 9: QUOTED-CHAR takes UTF-8; rev1 clients never send it
  p.literal_minus = o.literal_minus;  // RFC 7888 4: "{N+}" over 4096 octets is refused
  return p;
}

// The tag a command piece starts with, when it has one (for the response to a refused line).
std::string leading_tag(std::string_view piece) {
  std::string_view t = piece.substr(0, piece.find(' '));
  return is_tag(t) ? std::string(t) : std::string();
}

}  // namespace

// RFC 9051 6: the commands and the states they are valid in (not authenticated,
// authenticated, selected). Elsewhere: BAD.
const Server::Command Server::kCommands[] = {
    {"CAPABILITY", true, true, true, &Server::cmd_capability},  // RFC 9051 6.1.1
    {"NOOP", true, true, true, &Server::cmd_noop},              // RFC 9051 6.1.2
    {"LOGOUT", true, true, true, &Server::cmd_logout},          // RFC 9051 6.1.3
    {"STARTTLS", true, false, false, &Server::cmd_starttls},    // RFC 9051 6.2.1
    {"AUTHENTICATE", true, false, false, &Server::cmd_authenticate},  // RFC 9051 6.2.2
    {"LOGIN", true, false, false, &Server::cmd_login},          // RFC 9051 6.2.3
    {"ENABLE", false, true, false, &Server::cmd_enable},        // RFC 9051 6.3.1, RFC 5161 3.1
    {"ID", true, true, true, &Server::cmd_id},                  // RFC 2971 3.1: any state
    {"NAMESPACE", false, true, true, &Server::cmd_namespace},   // RFC 9051 6.3.10
    {"LIST", false, true, true, &Server::cmd_list},             // RFC 9051 6.3.9
    {"LSUB", false, true, true, &Server::cmd_lsub},             // RFC 3501 6.3.9
    {"STATUS", false, true, true, &Server::cmd_status},         // RFC 9051 6.3.11
    {"CREATE", false, true, true, &Server::cmd_create},         // RFC 9051 6.3.4
    {"DELETE", false, true, true, &Server::cmd_delete},         // RFC 9051 6.3.5
    {"RENAME", false, true, true, &Server::cmd_rename},         // RFC 9051 6.3.6
    {"SUBSCRIBE", false, true, true, &Server::cmd_subscribe},   // RFC 9051 6.3.7
    {"UNSUBSCRIBE", false, true, true, &Server::cmd_unsubscribe},  // RFC 9051 6.3.8
    {"SELECT", false, true, true, &Server::cmd_select},         // RFC 9051 6.3.2
    {"EXAMINE", false, true, true, &Server::cmd_examine},       // RFC 9051 6.3.3
    {"APPEND", false, true, true, &Server::cmd_append},         // RFC 9051 6.3.12
    {"IDLE", false, true, true, &Server::cmd_idle},             // RFC 2177 3
    {"CHECK", false, false, true, &Server::cmd_check},          // RFC 3501 6.4.1
    {"CLOSE", false, false, true, &Server::cmd_close},          // RFC 9051 6.4.1
    {"UNSELECT", false, false, true, &Server::cmd_unselect},    // RFC 3691 2, RFC 9051 6.4.2
    {"EXPUNGE", false, false, true, &Server::cmd_expunge},      // RFC 9051 6.4.3
    {"STORE", false, false, true, &Server::cmd_store},          // RFC 9051 6.4.6
    {"COPY", false, false, true, &Server::cmd_copy},            // RFC 9051 6.4.7
    {"MOVE", false, false, true, &Server::cmd_move},            // RFC 6851 3.1, RFC 9051 6.4.8
    {"UID", false, false, true, &Server::cmd_uid},              // RFC 9051 6.4.9
    {"FETCH", false, false, true, &Server::cmd_fetch},          // RFC 9051 6.4.5
    {"SEARCH", false, false, true, &Server::cmd_search},        // RFC 9051 6.4.4
};

std::string_view to_string(RespCode c) {
  switch (c) {
    case RespCode::None: return "";
    case RespCode::AuthenticationFailed: return "AUTHENTICATIONFAILED";  // RFC 9051 7.1
    case RespCode::AuthorizationFailed: return "AUTHORIZATIONFAILED";    // RFC 9051 7.1
    case RespCode::Unavailable: return "UNAVAILABLE";                    // RFC 9051 7.1
    case RespCode::ContactAdmin: return "CONTACTADMIN";                  // RFC 9051 7.1
    case RespCode::Limit: return "LIMIT";                                // RFC 9051 7.1
    case RespCode::TryCreate: return "TRYCREATE";                        // RFC 9051 7.1
    case RespCode::NonExistent: return "NONEXISTENT";                    // RFC 9051 7.1
    case RespCode::AlreadyExists: return "ALREADYEXISTS";                // RFC 9051 7.1
    case RespCode::Cannot: return "CANNOT";                              // RFC 9051 7.1
    case RespCode::HasChildren: return "HASCHILDREN";                    // RFC 9051 7.1
    case RespCode::InUse: return "INUSE";                                // RFC 9051 7.1
    case RespCode::NoPerm: return "NOPERM";                              // RFC 9051 7.1
    case RespCode::OverQuota: return "OVERQUOTA";                        // RFC 9051 7.1
    case RespCode::ServerBug: return "SERVERBUG";                        // RFC 9051 7.1
    case RespCode::UseAttr: return "USEATTR";                            // RFC 6154 3
  }
  return "";
}

const char* to_string(Server::State s) {
  switch (s) {
    case Server::State::NotAuthenticated: return "NotAuthenticated";
    case Server::State::Authenticated: return "Authenticated";
    case Server::State::Selected: return "Selected";
    case Server::State::Logout: return "Logout";
  }
  return "?";
}

Verdict Verdict::user(std::string identity) {
  Verdict v(Kind::Accept);
  v.text_ = std::move(identity);
  return v;
}

Verdict Verdict::accept() { return Verdict(Kind::Accept); }

Verdict Verdict::mailboxes(std::vector<MailboxInfo> list) {
  Verdict v(Kind::Accept);
  v.mailboxes_ = std::move(list);
  return v;
}

Verdict Verdict::counts(MailboxStatus counts) {
  Verdict v(Kind::Accept);
  v.counts_ = counts;
  return v;
}

namespace {
Verdict cannot() { return Verdict::reject(RespCode::Cannot, "Mailboxes are not available here"); }
}  // namespace

Verdict Session::list_mailboxes() { return cannot(); }
Verdict Session::status(const std::string&) { return cannot(); }
Verdict Session::create(const std::string&, const std::string&) { return cannot(); }
Verdict Session::remove(const std::string&) { return cannot(); }
Verdict Session::rename(const std::string&, const std::string&) { return cannot(); }
Verdict Session::subscribe(const std::string&, bool) { return cannot(); }
Verdict Session::select(const std::string&, bool) { return cannot(); }
Verdict Session::changes(std::uint64_t, std::uint32_t) { return Verdict::changes({}); }
Verdict Session::expunge(const std::vector<std::uint32_t>&) { return cannot(); }
Verdict Session::store(const std::vector<std::uint32_t>&, StoreOp, const Flags&, std::optional<std::uint64_t>) {
  return cannot();
}
Verdict Session::copy(const std::vector<std::uint32_t>&, const std::string&, bool) { return cannot(); }
Verdict Session::append_begin(const std::string&, const Flags&, std::optional<std::int64_t>, std::uint64_t) {
  return cannot();
}
Verdict Session::append_end() { return cannot(); }
Verdict Session::fetch(const std::vector<std::uint32_t>&, const FetchNeeds&) { return cannot(); }
Verdict Session::search(const SearchKey&, const std::vector<std::uint32_t>&, const std::vector<std::uint32_t>&) {
  return cannot();
}

Verdict Verdict::reject(RespCode code, std::string text) {
  Verdict v(Kind::Reject);
  v.code_ = code;
  v.text_ = std::move(text);
  return v;
}

Server::Server(const ServerOptions& options, Session& session)
    : Conversation(proto::LineEnd::CrLfOrLf, options.max_buffered_input),
      options_(options),
      session_(session),
      tls_(options.tls_active),
      parser_(parser_options(options)) {
  // RFC 9051 7.1.1: the greeting, with the capabilities so that a client need not ask.
  untagged("OK [CAPABILITY " + capabilities() + "] " + options_.hostname + " IMAP server ready");
}

Server::~Server() {
  if (input_ == Input::Append || input_ == Input::AppendTail) session_.append_abort();
}

void Server::untagged(std::string_view text) {
  std::string& out = output();
  out += "* ";
  out += text;
  out += "\r\n";
}

void Server::tagged(std::string_view tag, std::string_view status, std::string_view text) {
  std::string& out = output();
  out += tag;
  out += ' ';
  out += status;
  out += ' ';
  out += text;
  out += "\r\n";
}

void Server::bad(std::string_view tag, std::string_view text) {
  // RFC 9051 7.1.3: BAD, tagged when the tag could be read, untagged otherwise.
  if (tag.empty()) untagged(std::string("BAD ") + std::string(text));
  else tagged(tag, "BAD", text);
  if (++errors_ >= options_.max_errors) bye_and_close("Too many invalid commands");
}

void Server::bye_and_close(std::string_view text) {
  if (state_ == State::Logout) return;
  end_session();
  untagged(std::string("BYE ") + std::string(text));  // RFC 9051 7.1.5
  state_ = State::Logout;
  close();
}

std::string Server::capabilities() const {
  // RFC 9051 6.1.1: what works now, in this state.
  // RFC 7888 5: LITERAL+ or LITERAL-, never both.
  std::string c = options_.literal_minus ? "IMAP4rev2 IMAP4rev1 LITERAL-" : "IMAP4rev2 IMAP4rev1 LITERAL+";
  c += " SASL-IR ENABLE ID NAMESPACE";
  if (state_ == State::NotAuthenticated) {
    if (options_.starttls_available && !tls_) c += " STARTTLS";
    if (login_allowed()) {
      for (auto m : sasl_.offered()) {
        c += " AUTH=";
        c += sasl::mechanism_name(m);
      }
    } else {
      c += " LOGINDISABLED";  // RFC 9051 6.2.3
    }
  } else {
    c += " LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE CHILDREN STATUS=SIZE UIDPLUS MOVE";
    c += " UNSELECT IDLE UTF8=ACCEPT";
    c += " CONDSTORE ESEARCH SEARCHRES BINARY";
    c += " APPENDLIMIT=" + std::to_string(options_.max_append);  // RFC 7889 3
  }
  return c;
}

bool Server::wants_read() const { return state_ != State::Logout && reading(); }

void Server::receive(std::string_view bytes) {
  if (state_ == State::Logout) return;
  if (accept_input(bytes)) process();
}

void Server::end_session() {
  if (input_ == Input::Append || input_ == Input::AppendTail) session_.append_abort();
  input_ = Input::Line;
  leave_selected();
}

void Server::receive_eof() {
  if (state_ == State::Logout) return;
  end_session();
  state_ = State::Logout;
  close();
}

void Server::timed_out() { bye_and_close("Autologout; idle for too long"); }  // RFC 9051 5.4

void Server::tls_established(const TlsInfo& info) {
  tls_ = true;
  sasl_.set_channel_binding(info.tls_exporter);  // RFC 9266: SCRAM-SHA-256-PLUS from now on
  if (!finish_tls()) return;  // implicit TLS: nothing to forget
  // RFC 9051 6.2.1: the client discards what it knew of the server; nothing received before
  // the handshake is parsed (the conversation dropped it), and STARTTLS is not offered again.
  reset_parser();
  input_ = Input::Line;
  options_.starttls_available = false;
}

proto::Deadline Server::deadline() const {
  // 2n while waiting for a command after the n-th, 2n+1 once part of it arrived.
  if (state_ == State::Logout || (!in_.mid_line() && !mid_command_ && input_ == Input::Line))
    return {2 * phase_, std::chrono::milliseconds(0)};
  return {2 * phase_ + 1, options_.idle_timeout};
}

void Server::reset_parser() {
  parser_.reset();
  mid_command_ = false;
}

void Server::process() {
  while (state_ != State::Logout && !busy() && !tls_pending()) {
    if (input_ == Input::Append) {
      // APPEND's message: to the Session as it arrives, never held here.
      std::string_view chunk = in_.peek(static_cast<std::size_t>(std::min<std::uint64_t>(append_remaining_, 1 << 20)));
      if (chunk.empty()) return;
      session_.append_chunk(chunk);
      append_remaining_ -= chunk.size();
      in_.consume(chunk.size());
      if (append_remaining_ == 0) input_ = Input::AppendTail;
      continue;
    }
    if (input_ == Input::Literal || input_ == Input::DropLiteral) {
      std::uint64_t want = input_ == Input::Literal ? parser_.literal_remaining() : drop_remaining_;
      std::string_view chunk = in_.peek(static_cast<std::size_t>(std::min<std::uint64_t>(want, 1 << 20)));
      if (chunk.empty() && want > 0) return;
      if (input_ == Input::Literal) {
        parser_.feed_literal(chunk);  // state Line once the last octet arrived
        if (parser_.state() == Parser::State::Line) input_ = Input::Line;
      } else if ((drop_remaining_ -= chunk.size()) == 0) {
        input_ = Input::DropLine;
      }
      in_.consume(chunk.size());
      continue;
    }
    const bool sasl = input_ == Input::Sasl;
    std::string_view line;
    switch (next_command_line(options_.max_command_line, options_.max_auth_line, sasl, line)) {
      case proto::LineReader::Result::NeedMore:
        return;
      case proto::LineReader::Result::TooLong:
        // RFC 9051 4: a line over the server's limit is refused; the rest of it is dropped as
        // it arrives (a literal it might announce is lost with it, so the client is told).
        ++phase_;
        if (sasl) {
          sasl_.reset();
          input_ = Input::Line;
          bad(sasl_tag_, "Authentication response too long");
        } else {
          // The tag is known when the piece continues a command (after a literal, or the rest
          // of a refused one): that command ends here and gets its tagged BAD.
          const bool known = mid_command_ || input_ == Input::DropLine;
          if (input_ == Input::AppendTail) session_.append_abort();  // not stored
          input_ = Input::Line;
          reset_parser();
          refused_no_ = false;
          bad(known ? refused_tag_ : std::string(), "Command line too long");
        }
        continue;
      case proto::LineReader::Result::Line:
        break;
    }
    if (sasl) {
      input_ = Input::Line;
      ++phase_;
      sasl_step(sasl_.respond(line));
    } else if (input_ == Input::Idle) {
      idle_line(line);
    } else if (input_ == Input::AppendTail) {
      append_tail(line);
    } else {
      take_piece(line);
    }
  }
}

void Server::take_piece(std::string_view piece) {
  if (input_ == Input::DropLine) {
    // The rest of a refused command: it may announce another non-synchronizing literal.
    auto more = trailing_literal(piece);
    if (more && more->non_synchronizing) {
      drop_remaining_ = more->size;
      input_ = drop_remaining_ ? Input::DropLiteral : Input::DropLine;
      return;
    }
    input_ = Input::Line;
    reset_parser();
    ++phase_;
    return refusal_done();
  }
  if (!mid_command_) refused_tag_ = leading_tag(piece);
  mid_command_ = true;
  switch (parser_.feed_line(piece)) {
    case Parser::State::Done: {
      Values values = parser_.take_values();
      reset_parser();
      ++phase_;
      return command(std::move(values));
    }
    case Parser::State::Literal:
      if (append_intercept(piece)) return;
      if (parser_.literal().size > options_.limits.max_literal)
        return refuse(piece, "Literal too large", true);
      // RFC 9051 7.5: a continuation request for a synchronizing literal; RFC 7888 3: none for
      // "{N+}".
      if (!parser_.literal().non_synchronizing) write("+ Ready for literal data\r\n");
      input_ = parser_.literal_remaining() ? Input::Literal : Input::Line;
      if (input_ == Input::Line) parser_.feed_literal("");
      return;
    case Parser::State::Failed: {
      const ErrorKind k = parser_.error().kind;
      const bool too_big = k == ErrorKind::LiteralTooLarge || k == ErrorKind::LiteralMinus;
      return refuse(piece, parser_.error().message, too_big);
    }
    case Parser::State::Line:
      return;  // cannot happen after a whole piece
  }
}

void Server::refuse(std::string_view piece, std::string text, bool too_big) {
  // RFC 7888 4: a literal over the limit gets BAD [TOOBIG]; its octets still arrive when it
  // was non-synchronizing and are read and dropped with the rest of the command.
  refused_text_ = too_big ? "[TOOBIG] " + text : std::move(text);
  auto lit = trailing_literal(piece);
  if (lit && lit->non_synchronizing) {
    drop_remaining_ = lit->size;
    input_ = drop_remaining_ ? Input::DropLiteral : Input::DropLine;
    return;
  }
  reset_parser();
  ++phase_;
  input_ = Input::Line;
  refusal_done();
}

void Server::refusal_done() {
  if (!refused_no_) return bad(refused_tag_, refused_text_);
  refused_no_ = false;
  tagged(refused_tag_.empty() ? "*" : refused_tag_, "NO", refused_text_);
}

void Server::append_tail(std::string_view line) {
  // RFC 9051 6.3.12: the command ends after the message (RFC 3502 MULTIAPPEND is not offered);
  // RFC 6855 4: after "UTF8 (~{N}" message, its ")".
  ++phase_;
  reset_parser();
  bool unclosed = false;
  if (append_utf8_) {
    append_utf8_ = false;
    unclosed = line.empty() || line.front() != ')';
    if (!unclosed) line.remove_prefix(1);
  }
  if (unclosed || !line.empty()) {
    session_.append_abort();
    refused_tag_ = pending_tag_;
    refused_text_ = unclosed ? "APPEND UTF8 data ends with \")\"" : "APPEND takes one message";
    auto more = trailing_literal(line);
    if (more && more->non_synchronizing && more->size) {
      drop_remaining_ = more->size;
      input_ = Input::DropLiteral;
      return;
    }
    input_ = Input::Line;
    return bad(refused_tag_, refused_text_);
  }
  input_ = Input::Line;
  const std::string tag = std::move(pending_tag_);
  ask(Decision::AppendEnd, tag, std::move(pending_done_), session_.append_end());
}

void Server::command(Values values) {
  auto t = values.empty() ? std::nullopt : tag(values[0]);
  if (!t) return bad("", "Missing or invalid tag");
  if (values.size() < 2 || !atom(values[1])) return bad(*t, "Missing command name");
  // RFC 9051 6: a command's name is an atom, compared without regard to case.
  const std::string name = proto::ascii_upper(values[1].text);
  for (const Command& c : kCommands) {
    if (c.name != name) continue;
    const bool allowed = state_ == State::NotAuthenticated ? c.not_authenticated
                         : state_ == State::Authenticated  ? c.authenticated
                                                           : c.selected;
    if (!allowed) {
      return bad(*t, state_ == State::NotAuthenticated ? name + " needs a logged-in session"
                                                       : name + " is not valid in this state");
    }
    values.erase(values.begin(), values.begin() + 2);
    return (this->*c.run)(*t, values);
  }
  bad(*t, "Unknown command " + name);
}

void Server::cmd_capability(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "CAPABILITY takes no arguments");
  untagged("CAPABILITY " + capabilities());
  tagged(tag, "OK", "CAPABILITY completed");
}

void Server::cmd_noop(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "NOOP takes no arguments");
  // RFC 9051 6.1.2: in the selected state, the chance to report changes.
  finish(tag, "NOOP completed", true, true);
}

void Server::cmd_logout(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "LOGOUT takes no arguments");
  // RFC 9051 6.1.3: BYE first, then the tagged OK, then the server closes.
  end_session();
  untagged("BYE " + options_.hostname + " logging out");
  tagged(tag, "OK", "LOGOUT completed");
  state_ = State::Logout;
  close();
}

void Server::cmd_starttls(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "STARTTLS takes no arguments");
  if (tls_) return bad(tag, "TLS is already active");
  if (!options_.starttls_available) return bad(tag, "STARTTLS is not available");
  tagged(tag, "OK", "Begin TLS negotiation now");  // RFC 9051 6.2.1
  start_tls();
}

void Server::cmd_login(const std::string& tag, const Values& args) {
  if (args.size() != 2) return bad(tag, "LOGIN needs a user name and a password");
  auto name = astring(args[0]);
  auto password = astring(args[1]);
  if (!name || !password) return bad(tag, "LOGIN needs a user name and a password");
  // RFC 9051 6.2.3: with LOGINDISABLED advertised, LOGIN is refused; RFC 9051 7.1:
  // PRIVACYREQUIRED.
  if (!login_allowed())
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Log-in is disabled until STARTTLS has been used");
  start_login(tag, sasl::Credentials{"", *name, *password});
}

void Server::cmd_authenticate(const std::string& tag, const Values& args) {
  if (args.empty() || args.size() > 2 || !atom(args[0]))
    return bad(tag, "AUTHENTICATE needs a mechanism and at most an initial response");
  if (!login_allowed())
    return tagged(tag, "NO", "[PRIVACYREQUIRED] Authentication is disabled until STARTTLS has been used");
  std::string argument = args[0].text;
  if (args.size() == 2) {  // RFC 4959 3: SASL-IR, "=" for an empty one
    auto ir = atom(args[1]);
    if (!ir) return bad(tag, "The initial response must be base64 or \"=\"");
    argument += ' ';
    argument += *ir;
  }
  sasl_tag_ = tag;
  sasl_step(sasl_.start(argument));
}

void Server::sasl_step(const sasl::ServerAuth::Step& step) {
  using A = sasl::ServerAuth;
  const std::string tag = sasl_tag_;
  if (auto* c = std::get_if<A::Challenge>(&step)) {
    write(c->line);
    input_ = Input::Sasl;
  } else if (auto* l = std::get_if<A::ScramLookup>(&step)) {  // RFC 5802 5: the user's salt and keys
    ask(Decision::ScramLookup, tag, "", session_.scram_credentials(l->authcid));
  } else if (auto* d = std::get_if<A::Done>(&step)) {
    start_login(tag, d->credentials);
  } else if (auto* c = std::get_if<A::ScramChecked>(&step)) {
    ask(Decision::Login, tag, "", session_.scram_login(c->result));
  } else if (std::holds_alternative<A::Cancelled>(step)) {
    bad(tag, "Authentication cancelled");  // RFC 9051 6.2.2: BAD
  } else if (std::holds_alternative<A::UnknownMechanism>(step)) {
    tagged(tag, "NO", "Unsupported authentication mechanism");  // RFC 9051 6.2.2: NO
  } else if (std::holds_alternative<A::BadSyntax>(step) || std::holds_alternative<A::BadBase64>(step)) {
    bad(tag, "Malformed authentication data");
  } else if (std::holds_alternative<A::Failed>(step)) {
    tagged(tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
    if (++login_failures_ >= options_.max_login_failures) bye_and_close("Too many failed log-ins");
  }
}

void Server::start_login(const std::string& tag, const sasl::Credentials& creds) {
  ask(Decision::Login, tag, "", session_.login(creds));
}

void Server::refused(const std::string& tag, const Verdict& v) {
  if (v.kind() == Verdict::Kind::Failed) {
    session_.log("command failed: " + v.status().message());
    return tagged(tag, "NO", "[UNAVAILABLE] Temporary failure, try again later");
  }
  std::string text;
  if (v.code() != RespCode::None) text = "[" + std::string(to_string(v.code())) + "] ";
  tagged(tag, "NO", text + v.text());
}

void Server::ask(Decision d, const std::string& tag, std::string done_text, Verdict v) {
  pending_tag_ = tag;
  pending_done_ = std::move(done_text);
  awaiting_.begin(d);
  apply(std::move(v));
}

void Server::apply(Verdict v) {
  if (v.kind() == Verdict::Kind::Pending) return;
  const Decision d = awaiting_.end();
  if (d == Decision::ScramLookup) {
    if (v.accepted()) return sasl_step(sasl_.scram_credentials(v.scram_credentials()));
    sasl_.reset();  // refused before the exchange went on: as a refused log-in
  }
  if (d != Decision::Login && d != Decision::ScramLookup && d != Decision::List && d != Decision::ListStatus &&
      d != Decision::Status && d != Decision::Change)
    return apply_selected(d, std::move(v));
  if (d == Decision::ListStatus) {
    list_status(v);
    return list_continue();
  }
  if (d == Decision::List && v.accepted()) {
    send_list(v.take_mailboxes());
    return list_continue();
  }
  if (d != Decision::Login && d != Decision::ScramLookup) {
    const std::string tag = std::move(pending_tag_);
    if (!v.accepted()) return refused(tag, v);
    if (d == Decision::Status) send_status(v.counts());
    return tagged(tag, "OK", pending_done_);
  }
  const std::string tag = std::move(pending_tag_);
  switch (v.kind()) {
    case Verdict::Kind::Accept:
      user_ = v.text();
      state_ = State::Authenticated;
      // RFC 9051 6.2.3: the capabilities may change with the log-in; send them with the OK.
      tagged(tag, "OK", "[CAPABILITY " + capabilities() + "] Logged in");
      return;
    case Verdict::Kind::Reject: {
      std::string text;
      if (v.code() != RespCode::None) text = "[" + std::string(to_string(v.code())) + "] ";
      tagged(tag, "NO", text + v.text());
      break;
    }
    case Verdict::Kind::Failed:
      session_.log("login failed: " + v.status().message());
      tagged(tag, "NO", "[UNAVAILABLE] Temporary failure, try again later");
      break;
    case Verdict::Kind::Pending:
      return;
  }
  if (++login_failures_ >= options_.max_login_failures) bye_and_close("Too many failed log-ins");
}

Status Server::complete(Verdict v) {
  if (Status st = proto::check_completion(awaiting_.active(), v.kind()); !st.ok()) return st;
  apply(std::move(v));
  process();
  return Status();
}

void Server::cmd_enable(const std::string& tag, const Values& args) {
  if (args.empty()) return bad(tag, "ENABLE needs at least one capability");
  std::string enabled;
  for (const Value& a : args) {
    auto name = atom(a);
    if (!name) return bad(tag, "ENABLE takes capability names");
    // RFC 5161 3.1: what this server knows and has not enabled yet; others are ignored.
    if (proto::ascii_upper(*name) == "IMAP4REV2" && !rev2_) {
      rev2_ = true;
      enabled += " IMAP4rev2";
    } else if (proto::ascii_upper(*name) == "CONDSTORE" && !condstore_) {  // RFC 7162 3.1
      condstore_ = true;
      enabled += " CONDSTORE";
    } else if (proto::ascii_upper(*name) == "UTF8=ACCEPT" && !utf8_) {  // RFC 6855 3
      utf8_ = true;
      enabled += " UTF8=ACCEPT";
    }
  }
  untagged("ENABLED" + enabled);  // RFC 5161 3.1: sent even when nothing was enabled
  tagged(tag, "OK", "ENABLE completed");
}

void Server::cmd_id(const std::string& tag, const Values& args) {
  // RFC 2971 3.1: ID ("field" "value" ...) or ID NIL; at most 30 pairs, fields of at most 30
  // octets, values of at most 1024 (3.3). What the client says changes nothing here.
  if (args.size() != 1) return bad(tag, "ID takes one list or NIL");
  const Value& a = args[0];
  if (a.kind != Value::Kind::Nil) {
    if (!a.is_list() || a.items.size() % 2 != 0 || a.items.size() > 60)
      return bad(tag, "ID takes a list of at most 30 field and value pairs");
    for (std::size_t i = 0; i < a.items.size(); i += 2) {
      auto field = string(a.items[i]);
      auto value = nstring(a.items[i + 1]);
      if (!field || field->size() > 30 || !value || (*value && (*value)->size() > 1024))
        return bad(tag, "ID fields are strings of at most 30 octets, values at most 1024");
    }
  }
  untagged("ID (\"name\" " + quote_or_literal(options_.implementation) + ")");
  tagged(tag, "OK", "ID completed");
}

void Server::cmd_namespace(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "NAMESPACE takes no arguments");
  // RFC 2342 5, RFC 9051 6.3.10: one personal namespace with the hierarchy delimiter "/", no
  // other users' and no shared mailboxes.
  untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
  tagged(tag, "OK", "NAMESPACE completed");
}

// --- Mailbox names ---------------------------------------------------------------------------

namespace {

// RFC 9051 5.1: INBOX is case-insensitive, also as the first level of a hierarchy.
std::string canonical_inbox(std::string name) {
  if (proto::starts_with_upper(name, "INBOX") && (name.size() == 5 || name[5] == '/'))
    name.replace(0, 5, "INBOX");
  return name;
}

// A name the store can hold: not empty, no empty level, no control characters, no wildcards
// (RFC 9051 5.1: "%" and "*" would make LIST ambiguous).
bool valid_name(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.find("//") != std::string_view::npos) return false;
  for (char c : name)
    if (is_ctl(c) || c == '%' || c == '*') return false;
  // RFC 6855 3, RFC 9051 5.1: Net-Unicode (RFC 5198 2) without the C1 controls U+0080-U+009F,
  // the line separator U+2028 and the paragraph separator U+2029.
  for (std::size_t i = 0; i + 1 < name.size(); ++i) {
    const auto b0 = static_cast<unsigned char>(name[i]), b1 = static_cast<unsigned char>(name[i + 1]);
    if (b0 == 0xC2 && b1 >= 0x80 && b1 <= 0x9F) return false;
    if (b0 == 0xE2 && b1 == 0x80 && i + 2 < name.size() &&
        (static_cast<unsigned char>(name[i + 2]) == 0xA8 || static_cast<unsigned char>(name[i + 2]) == 0xA9))
      return false;
  }
  return true;
}

// RFC 9051 6.3.9: "*" matches any characters, "%" any but the hierarchy delimiter.
bool wildcard_match(std::string_view name, std::string_view pattern) {
  std::size_t n = 0, p = 0, star_p = std::string_view::npos, star_n = 0;
  std::vector<std::pair<std::size_t, std::size_t>> percents;  // backtracking points for "%"
  while (true) {
    if (p < pattern.size() && pattern[p] == '*') {
      star_p = p++;
      star_n = n;
      percents.clear();
      continue;
    }
    if (p < pattern.size() && pattern[p] == '%') {
      percents.push_back({p++, n});
      continue;
    }
    if (n == name.size() && p == pattern.size()) return true;
    if (n < name.size() && p < pattern.size() && name[n] == pattern[p]) {
      ++n;
      ++p;
      continue;
    }
    // Backtrack: let the last "%" take one more character (never a "/"), else the last "*".
    bool resumed = false;
    while (!percents.empty()) {
      auto& [pp, pn] = percents.back();
      if (pn < name.size() && name[pn] != '/') {
        n = ++pn;
        p = pp + 1;
        resumed = true;
        break;
      }
      percents.pop_back();
    }
    if (resumed) continue;
    if (star_p != std::string_view::npos && star_n < name.size()) {
      n = ++star_n;
      p = star_p + 1;
      continue;
    }
    return false;
  }
}

// A LIST pattern: an atom of list-chars or a string (RFC 9051 9: list-mailbox).
std::optional<std::string> list_pattern(const Value& v) {
  if (v.kind == Value::Kind::Atom || v.kind == Value::Kind::Number || v.kind == Value::Kind::Nil) {
    for (char c : v.text)
      if (!is_list_char(c)) return std::nullopt;
    return v.text;
  }
  return string(v);
}

}  // namespace

std::optional<std::string> Server::mailbox_name(const Value& v) const {
  auto name = mailbox(v);
  if (!name) return std::nullopt;
  if (rev2_ || utf8_) {  // RFC 9051 5.1, RFC 6855 3: UTF-8 itself
    if (!is_utf8(*name)) return std::nullopt;
  } else {
    auto decoded = mutf7_decode(*name);  // RFC 3501 5.1.3
    if (!decoded) return std::nullopt;
    name = std::move(decoded);
  }
  return canonical_inbox(std::move(*name));
}

std::string Server::encode_mailbox(const std::string& name) const {
  if (rev2_ || utf8_) return encode_astring(name, true);
  return encode_astring(mutf7_encode(name));
}

// --- LIST, LSUB, STATUS and the changes ---------------------------------------------------------

void Server::cmd_list(const std::string& tag, const Values& args) { list_or_lsub(tag, args, false); }
void Server::cmd_lsub(const std::string& tag, const Values& args) { list_or_lsub(tag, args, true); }

void Server::list_or_lsub(const std::string& tag, const Values& args, bool lsub) {
  ListRequest r;
  r.lsub = lsub;
  std::size_t i = 0;
  // RFC 5258 3: LIST [(selection options)] reference patterns [RETURN (return options)].
  if (!lsub && i < args.size() && args[i].is_list()) {
    r.extended = true;
    for (const Value& o : args[i].items) {
      auto name = atom(o);
      if (!name) return bad(tag, "LIST selection options are atoms");
      const std::string u = proto::ascii_upper(*name);
      if (u == "SUBSCRIBED") r.select_subscribed = true;
      else if (u == "SPECIAL-USE") r.select_special_use = true;  // RFC 6154 3
      else if (u == "RECURSIVEMATCH") r.recursive = true;
      else if (u != "REMOTE") return bad(tag, "Unknown LIST selection option " + u);  // RFC 5258 3
    }
    // RFC 5258 3: RECURSIVEMATCH only with another selection option.
    if (r.recursive && !r.select_subscribed) return bad(tag, "RECURSIVEMATCH needs SUBSCRIBED");
    ++i;
  }
  if (args.size() < i + 2) return bad(tag, lsub ? "LSUB needs a reference and a pattern" : "LIST needs a reference and a pattern");
  auto reference = mailbox(args[i]);
  if (!reference) return bad(tag, "Invalid reference name");
  std::vector<std::string> patterns;
  const Value& p = args[i + 1];
  if (!lsub && p.is_list()) {  // RFC 5258 3: several patterns
    r.extended = true;
    for (const Value& one : p.items) {
      auto text = list_pattern(one);
      if (!text) return bad(tag, "Invalid mailbox pattern");
      patterns.push_back(*text);
    }
  } else {
    auto text = list_pattern(p);
    if (!text) return bad(tag, "Invalid mailbox pattern");
    patterns.push_back(*text);
  }
  i += 2;
  if (!lsub && i < args.size()) {
    auto kw = atom(args[i]);
    if (!kw || proto::ascii_upper(*kw) != "RETURN" || i + 2 != args.size() || !args[i + 1].is_list())
      return bad(tag, "LIST takes RETURN (options) last");
    r.extended = true;
    const Values& opts = args[i + 1].items;
    for (std::size_t k = 0; k < opts.size(); ++k) {
      auto name = atom(opts[k]);
      if (!name) return bad(tag, "LIST return options are atoms");
      const std::string u = proto::ascii_upper(*name);
      if (u == "SUBSCRIBED") {
        r.return_subscribed = true;
      } else if (u == "STATUS") {  // RFC 5819 2: return-option =/ "STATUS" SP "(" status-att-list ")"
        if (r.return_status || k + 1 >= opts.size() || !opts[k + 1].is_list() || opts[k + 1].items.empty())
          return bad(tag, "LIST RETURN STATUS needs one list of STATUS items");
        auto items = status_items(tag, opts[++k]);
        if (!items) return;
        r.return_status = true;
        status_items_ = std::move(*items);
      } else if (u != "CHILDREN" && u != "SPECIAL-USE") {  // RFC 3348, RFC 6154: always sent
        return bad(tag, "Unknown LIST return option " + u);
      }
    }
  } else if (i != args.size()) {
    return bad(tag, "Too many arguments");
  }
  if (patterns.size() == 1 && patterns[0].empty() && !r.extended && !lsub) {
    r.root_only = true;  // RFC 9051 6.3.9: the hierarchy delimiter and the root
  }
  for (std::string& pat : patterns) {
    std::string full = *reference + pat;  // RFC 9051 6.3.9: the reference, then the pattern
    std::string decoded = full;
    if (!rev2_ && !utf8_) {
      auto d = mutf7_decode(full);
      if (!d) return bad(tag, "The pattern is not modified UTF-7");
      decoded = std::move(*d);
    }
    r.patterns.push_back(canonical_inbox(std::move(decoded)));
  }
  list_ = std::move(r);
  if (list_.root_only) {
    untagged("LIST (\\Noselect) \"/\" \"\"");
    return tagged(tag, "OK", "LIST completed");
  }
  ask(Decision::List, tag, lsub ? "LSUB completed" : "LIST completed", session_.list_mailboxes());
}

void Server::send_list(std::vector<MailboxInfo> mailboxes) {
  const ListRequest& r = list_;
  struct Entry {
    bool exists = false, subscribed = false, implied = false;
    std::string special_use;
  };
  std::map<std::string, Entry> names;  // sorted; INBOX goes first below
  list_out_.clear();
  list_next_ = 0;
  for (MailboxInfo& m : mailboxes) {
    Entry& e = names[m.name];
    e.exists = e.exists || m.exists;
    e.subscribed = e.subscribed || m.subscribed;
    if (!m.special_use.empty()) e.special_use = m.special_use;
  }
  // Parents that exist only as part of a longer name.
  std::vector<std::string> parents;
  for (const auto& [name, e] : names) {
    if (!(r.lsub || r.select_subscribed ? e.subscribed : e.exists)) continue;
    for (std::size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
      parents.push_back(name.substr(0, slash));
  }
  for (const std::string& p : parents)
    if (!names.count(p)) names[p].implied = true;
  auto matches = [&](const std::string& name) {
    for (const std::string& p : r.patterns)
      if (wildcard_match(name, p)) return true;
    return false;
  };
  auto descendants = [&](const std::string& name, auto pred) {
    const std::string prefix = name + "/";
    for (auto it = names.upper_bound(prefix); it != names.end() && it->first.rfind(prefix, 0) == 0; ++it)
      if (pred(it->second)) return true;
    return false;
  };
  std::vector<std::string> order;
  if (names.count("INBOX")) order.push_back("INBOX");
  for (const auto& [name, e] : names)
    if (name != "INBOX") order.push_back(name);
  for (const std::string& name : order) {
    const Entry& e = names[name];
    if (!matches(name)) continue;
    // RFC 6154 3: the SPECIAL-USE selection option lists only mailboxes with a special use.
    if (r.select_special_use && e.special_use.empty()) continue;
    const bool by_subscription = r.lsub || r.select_subscribed;
    auto chosen = [&](const Entry& d) { return by_subscription ? d.subscribed : d.exists; };
    std::string childinfo;
    if (!chosen(e)) {
      // Not selected itself: listed only as the parent of selected mailboxes.
      if (!descendants(name, chosen)) continue;
      if (r.recursive) {
        childinfo = " (\"CHILDINFO\" (\"SUBSCRIBED\"))";  // RFC 5258 4
      } else if (r.select_subscribed) {
        continue;  // RFC 5258 3: parents of subscribed mailboxes only with RECURSIVEMATCH
      } else {
        // RFC 9051 6.3.9, RFC 3501 6.3.9 (LSUB): a parent that "%" reaches but its selected
        // descendants it does not; when the pattern reaches them, they show themselves.
        bool reached = false;
        const std::string prefix = name + "/";
        for (auto it = names.upper_bound(prefix); it != names.end() && it->first.rfind(prefix, 0) == 0; ++it)
          if (chosen(it->second) && matches(it->first)) reached = true;
        if (reached) continue;
      }
    }
    std::vector<std::string> attrs;
    if (!e.exists || (r.lsub && !e.subscribed)) {
      // RFC 9051 7.3.1, RFC 5258: \NonExistent (which implies \Noselect); IMAP4rev1 clients
      // without the extended syntax know \Noselect.
      attrs.push_back((r.extended || rev2_) && !r.lsub ? "\\NonExistent" : "\\Noselect");
    }
    if (!r.lsub) {  // RFC 3348: CHILDREN
      attrs.push_back(descendants(name, [](const Entry& d) { return d.exists; }) ? "\\HasChildren" : "\\HasNoChildren");
      if (!e.special_use.empty()) attrs.push_back(e.special_use);  // RFC 6154 2
      if ((r.return_subscribed || r.select_subscribed) && e.subscribed) attrs.push_back("\\Subscribed");
    }
    std::string line = r.lsub ? "LSUB (" : "LIST (";
    for (std::size_t k = 0; k < attrs.size(); ++k) line += (k ? " " : "") + attrs[k];
    line += ") \"/\" " + encode_mailbox(name) + childinfo;
    // RFC 5819 2: STATUS only for a mailbox that can be selected (no \NonExistent, \Noselect).
    list_out_.emplace_back(std::move(line), r.return_status && !r.lsub && e.exists ? name : std::string());
  }
}

void Server::list_status(const Verdict& v) {
  // RFC 5819 2: a mailbox whose status cannot be had gets no STATUS; the LIST goes on.
  if (v.accepted()) send_status(v.counts());
  else if (v.kind() == Verdict::Kind::Failed) session_.log("LIST-STATUS failed: " + v.status().message());
}

void Server::list_continue() {
  while (list_next_ < list_out_.size()) {
    auto [line, name] = std::move(list_out_[list_next_++]);
    untagged(line);
    if (name.empty()) continue;
    // RFC 5819 2: the STATUS of a mailbox follows its LIST line.
    status_name_ = std::move(name);
    awaiting_.begin(Decision::ListStatus);
    Verdict v = session_.status(status_name_);
    if (v.kind() == Verdict::Kind::Pending) return;  // complete() goes on from apply()
    awaiting_.end();
    list_status(v);
  }
  list_out_.clear();
  list_next_ = 0;
  const std::string tag = std::move(pending_tag_);
  tagged(tag, "OK", pending_done_);
}

void Server::cmd_status(const std::string& tag, const Values& args) {
  if (args.size() != 2 || !args[1].is_list() || args[1].items.empty())
    return bad(tag, "STATUS needs a mailbox and a list of items");
  auto name = mailbox_name(args[0]);
  if (!name) return bad(tag, "Invalid mailbox name");
  auto items = status_items(tag, args[1]);
  if (!items) return;
  status_name_ = *name;
  status_items_ = std::move(*items);
  ask(Decision::Status, tag, "STATUS completed", session_.status(*name));
}

std::optional<std::vector<std::string>> Server::status_items(const std::string& tag, const Value& list) {
  std::vector<std::string> items;
  for (const Value& v : list.items) {
    auto item = atom(v);
    const std::string u = item ? proto::ascii_upper(*item) : "";
    // RFC 9051 6.3.11 (DELETED, SIZE: RFC 8438), RFC 3501 6.3.10 (RECENT), RFC 7162 3.1.3.
    if (u != "MESSAGES" && u != "UIDNEXT" && u != "UIDVALIDITY" && u != "UNSEEN" && u != "DELETED" &&
        u != "SIZE" && u != "RECENT" && u != "HIGHESTMODSEQ") {
      bad(tag, "Unknown STATUS item " + (item ? *item : std::string("")));
      return std::nullopt;
    }
    items.push_back(u);
  }
  return items;
}

void Server::send_status(const MailboxStatus& st) {
  std::string line = "STATUS " + encode_mailbox(status_name_) + " (";
  for (std::size_t k = 0; k < status_items_.size(); ++k) {
    const std::string& item = status_items_[k];
    std::uint64_t n = item == "MESSAGES" ? st.messages : item == "UIDNEXT" ? st.uidnext
                      : item == "UIDVALIDITY" ? st.uidvalidity : item == "UNSEEN" ? st.unseen
                      : item == "DELETED" ? st.deleted : item == "SIZE" ? st.size
                      : item == "RECENT" ? st.recent : st.highest_modseq;
    line += (k ? " " : "") + item + " " + std::to_string(n);
  }
  untagged(line + ")");
}

void Server::cmd_create(const std::string& tag, const Values& args) {
  // RFC 4466 2.2: CREATE mailbox [SP "(" create-param *(SP create-param) ")"].
  if (args.size() != 1 && (args.size() != 2 || !args[1].is_list() || args[1].items.empty()))
    return bad(tag, "CREATE needs a mailbox name and may have a list of parameters");
  auto name = mailbox_name(args[0]);
  // RFC 9051 6.3.4: a trailing hierarchy delimiter is dropped.
  while (name && name->size() > 1 && name->back() == '/') name->pop_back();
  if (!name || !valid_name(*name)) return bad(tag, "Invalid mailbox name");
  std::vector<std::string> uses;
  bool use_seen = false;
  if (args.size() == 2) {
    const Values& params = args[1].items;
    for (std::size_t k = 0; k < params.size(); ++k) {
      auto param = atom(params[k]);
      // RFC 4466 2.2: an unknown parameter is BAD. RFC 6154 6: create-param =/ "USE" SP "("
      // [use-attr *(SP use-attr)] ")".
      if (!param || proto::ascii_upper(*param) != "USE") return bad(tag, "Unknown CREATE parameter");
      if (use_seen || k + 1 >= params.size() || !params[k + 1].is_list())
        return bad(tag, "CREATE USE needs one list of special-use attributes");
      use_seen = true;
      for (const Value& a : params[++k].items) {
        // RFC 6154 6: use-attr = "\\All" / ... / use-attr-ext, use-attr-ext = "\\" atom.
        const std::string& attr = a.text;
        if (a.kind != Value::Kind::Atom || attr.size() < 2 || attr[0] != '\\' || !is_atom(attr.substr(1)))
          return bad(tag, "Special-use attributes are \\ and an atom");
        uses.push_back(attr);
      }
    }
  }
  if (*name == "INBOX") return tagged(tag, "NO", "[ALREADYEXISTS] INBOX always exists");  // RFC 9051 6.3.4
  // RFC 6154 3: a special use the server cannot give is NO [USEATTR], and nothing is created.
  // The store keeps one per mailbox, of those it can implement (\All and \Flagged are virtual
  // mailboxes, which cmail does not have).
  std::string special_use;
  for (const std::string& u : uses) {
    static const char* const kUses[] = {"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"};
    std::string canonical;
    for (const char* k : kUses)
      if (proto::ascii_upper(k) == proto::ascii_upper(u)) canonical = k;
    if (canonical.empty()) return tagged(tag, "NO", "[USEATTR] " + u + " is not supported");
    if (!special_use.empty() && special_use != canonical)
      return tagged(tag, "NO", "[USEATTR] A mailbox has at most one special use here");
    special_use = canonical;
  }
  ask(Decision::Change, tag, "CREATE completed", session_.create(*name, special_use));
}

void Server::cmd_delete(const std::string& tag, const Values& args) {
  if (args.size() != 1) return bad(tag, "DELETE needs a mailbox name");
  auto name = mailbox_name(args[0]);
  if (!name || !valid_name(*name)) return bad(tag, "Invalid mailbox name");
  if (*name == "INBOX") return tagged(tag, "NO", "[CANNOT] INBOX cannot be deleted");  // RFC 9051 6.3.5
  ask(Decision::Change, tag, "DELETE completed", session_.remove(*name));
}

void Server::cmd_rename(const std::string& tag, const Values& args) {
  if (args.size() != 2) return bad(tag, "RENAME needs two mailbox names");
  auto from = mailbox_name(args[0]);
  auto to = mailbox_name(args[1]);
  while (to && to->size() > 1 && to->back() == '/') to->pop_back();
  if (!from || !to || !valid_name(*from) || !valid_name(*to)) return bad(tag, "Invalid mailbox name");
  if (*to == "INBOX")
    return tagged(tag, "NO", "[ALREADYEXISTS] INBOX always exists");  // RFC 9051 6.3.6
  if (*from == *to) return tagged(tag, "NO", "[ALREADYEXISTS] The mailbox has that name");
  if (to->rfind(*from + "/", 0) == 0) return tagged(tag, "NO", "[CANNOT] A mailbox cannot move into itself");
  ask(Decision::Change, tag, "RENAME completed", session_.rename(*from, *to));
}

void Server::cmd_subscribe(const std::string& tag, const Values& args) { subscription(tag, args, true); }
void Server::cmd_unsubscribe(const std::string& tag, const Values& args) { subscription(tag, args, false); }

void Server::subscription(const std::string& tag, const Values& args, bool on) {
  const std::string verb = on ? "SUBSCRIBE" : "UNSUBSCRIBE";
  if (args.size() != 1) return bad(tag, verb + " needs a mailbox name");
  auto name = mailbox_name(args[0]);
  if (!name || !valid_name(*name)) return bad(tag, "Invalid mailbox name");
  ask(Decision::Change, tag, verb + " completed", session_.subscribe(*name, on));
}

}  // namespace cmail::imap
