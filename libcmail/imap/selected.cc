// The IMAP server engine's selected state (RFC 9051 6.3.2-6.4, RFC 3501 6.4, with UIDPLUS
// RFC 4315, MOVE RFC 6851, UNSELECT RFC 3691, IDLE RFC 2177, CONDSTORE RFC 7162 and
// APPENDLIMIT RFC 7889): the view of the selected mailbox, the commands that change it, and
// the report of changes made elsewhere. See cmail/imap/server.h.
#include <cmail/imap/server.h>

#include <cmail/proto/ascii.h>

#include <algorithm>
#include <utility>

namespace cmail::imap {

using proto::ascii_upper;

namespace {

// The UIDs of `source` in the order of `target`'s pairs, as COPYUID writes them (RFC 4315 3:
// the two sets correspond element by element).
std::string copyuid_text(const CopyResult& r) {
  std::string src, dst;
  for (std::size_t i = 0; i < r.source.size() && i < r.target.size(); ++i) {
    if (i) {
      src += ',';
      dst += ',';
    }
    src += std::to_string(r.source[i]);
    dst += std::to_string(r.target[i]);
  }
  return "[COPYUID " + std::to_string(r.uidvalidity) + " " + src + " " + dst + "]";
}

// RFC 9051 9: date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone
// DQUOTE, as Unix time; nullopt when malformed.
std::optional<std::int64_t> parse_date_time(std::string_view s) {
  static constexpr std::string_view kMonths[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                 "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
  if (s.size() != 26) return std::nullopt;
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  // date-day-fixed = (SP DIGIT) / 2DIGIT
  std::optional<int> day = s[0] == ' ' ? digits(1, 1) : digits(0, 2);
  if (!day || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' || s[17] != ':' ||
      s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
    return std::nullopt;
  int month = 0;
  const std::string mon = ascii_upper(s.substr(3, 3));
  while (month < 12 && kMonths[month] != mon) ++month;
  auto year = digits(7, 4), hh = digits(12, 2), mm = digits(15, 2), ss = digits(18, 2);
  auto zh = digits(22, 2), zm = digits(24, 2);
  if (month == 12 || !year || !hh || !mm || !ss || !zh || !zm || *day < 1 || *day > 31 ||
      *hh > 23 || *mm > 59 || *ss > 60 || *zm > 59)
    return std::nullopt;
  // Days from 1970-01-01 of a proleptic Gregorian date.
  int y = *year - (month < 2 ? 1 : 0);
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int mp = (month + 10) % 12;  // March is 0
  const int doy = (153 * mp + 2) / 5 + *day - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  const std::int64_t zone = (*zh * 3600 + *zm * 60) * (s[21] == '-' ? -1 : 1);
  return days * 86400 + *hh * 3600 + *mm * 60 + std::min(*ss, 59) - zone;
}

}  // namespace

Verdict Verdict::selected(SelectResult r) { return carrying(std::move(r)); }
Verdict Verdict::changes(MailboxChanges c) { return carrying(std::move(c)); }
Verdict Verdict::expunged(std::vector<std::uint32_t> uids) { return carrying(std::move(uids)); }
Verdict Verdict::stored(StoreResult r) { return carrying(std::move(r)); }
Verdict Verdict::copied(CopyResult r) { return carrying(std::move(r)); }
Verdict Verdict::appended(AppendResult r) { return carrying(r); }
Verdict Verdict::fetched(std::vector<FetchedMessage> messages, std::size_t answered) {
  return carrying(FetchedBatch{std::move(messages), answered});
}
Verdict Verdict::found(std::vector<SearchMatch> matches) { return carrying(std::move(matches)); }

// --- The view ----------------------------------------------------------------------------------

std::optional<std::vector<std::uint32_t>> Server::resolve(const SequenceSet& set, bool uid) const {
  const auto& uids = view_.uids;
  std::vector<std::uint32_t> out;
  if (!uid) {
    // RFC 9051 9: seq-number is a message sequence number of the view; over its size: BAD.
    const auto size = static_cast<std::uint32_t>(uids.size());
    if (set.max_named() > size) return std::nullopt;
    set.for_each(size, [&](std::uint32_t seq) { out.push_back(uids[seq - 1]); });
    return out;
  }
  // RFC 9051 6.4.9: "*" is the largest UID in use; UIDs that do not exist are ignored.
  const std::uint32_t largest = uids.empty() ? 0 : uids.back();
  for (const SequenceSet::Range& r : set.resolve(largest)) {
    for (auto it = std::lower_bound(uids.begin(), uids.end(), r.first); it != uids.end() && *it <= r.last; ++it)
      out.push_back(*it);
  }
  return out;
}

std::optional<std::vector<std::uint32_t>> Server::message_set(const Value& v, bool uid) const {
  auto set = sequence_set(v);
  if (!set) return std::nullopt;
  if (set->saved) {
    // RFC 5182 2.1: "$" is the saved result, the messages of it still in the view, in the
    // UID and in the message number forms of a command alike.
    std::vector<std::uint32_t> out;
    for (std::uint32_t u : saved_)
      if (seq_of(u)) out.push_back(u);
    return out;
  }
  return resolve(*set, uid);
}

std::uint32_t Server::seq_of(std::uint32_t uid) const {
  auto it = std::lower_bound(view_.uids.begin(), view_.uids.end(), uid);
  if (it == view_.uids.end() || *it != uid) return 0;
  return static_cast<std::uint32_t>(it - view_.uids.begin()) + 1;
}

std::string Server::fetch_flags_line(std::uint32_t seq, const MessageState& m, bool with_uid) const {
  std::string line = std::to_string(seq) + " FETCH (";
  if (with_uid) line += "UID " + std::to_string(m.uid) + " ";
  line += "FLAGS " + encode_flags(m.flags);
  if (condstore_) line += " MODSEQ (" + std::to_string(m.modseq) + ")";  // RFC 7162 3.1.4
  return line + ")";
}

void Server::report_expunged(const std::vector<std::uint32_t>& uids) {
  // RFC 9051 7.5.1: each EXPUNGE names the sequence number at the time it is sent, and the
  // numbers after it go down by one; highest first, so every number is the one the client has.
  std::vector<std::uint32_t> sorted = uids;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  for (std::uint32_t uid : sorted) {
    const std::uint32_t seq = seq_of(uid);
    if (!seq) continue;
    untagged(std::to_string(seq) + " EXPUNGE");
    view_.uids.erase(view_.uids.begin() + (seq - 1));
  }
  // RFC 5182 2.1: expunged messages leave the saved result.
  saved_.erase(std::remove_if(saved_.begin(), saved_.end(), [&](std::uint32_t u) { return !seq_of(u); }), saved_.end());
  auto& later = view_.expunge_later;
  later.erase(std::remove_if(later.begin(), later.end(), [&](std::uint32_t u) { return !seq_of(u); }),
              later.end());
}

void Server::report_changes(MailboxChanges c, bool expunge_ok) {
  for (std::uint32_t uid : c.expunged)
    if (seq_of(uid) && std::find(view_.expunge_later.begin(), view_.expunge_later.end(), uid) == view_.expunge_later.end())
      view_.expunge_later.push_back(uid);
  if (expunge_ok && !view_.expunge_later.empty()) report_expunged(std::vector<std::uint32_t>(view_.expunge_later));
  std::vector<std::string> fetches;
  bool grew = false;
  for (const MessageState& m : c.messages) {
    if (std::find(view_.expunge_later.begin(), view_.expunge_later.end(), m.uid) != view_.expunge_later.end())
      continue;
    if (const std::uint32_t seq = seq_of(m.uid)) {
      auto own = std::find_if(view_.reported.begin(), view_.reported.end(),
                              [&](const auto& r) { return r.first == m.uid; });
      if (own != view_.reported.end() && own->second >= m.modseq) continue;  // sent by STORE
      // RFC 9051 7.4.2: a flag change made elsewhere, as an unsolicited FETCH with the UID.
      fetches.push_back(fetch_flags_line(seq, m, true));
    } else if (view_.uids.empty() || m.uid > view_.uids.back()) {
      view_.uids.push_back(m.uid);  // RFC 9051 7.4.1: a new message
      grew = true;
    }
  }
  view_.reported.clear();
  view_.uidnext = std::max(view_.uidnext, c.uidnext);
  if (!view_.uids.empty()) view_.uidnext = std::max(view_.uidnext, view_.uids.back() + 1);
  view_.highest_modseq = std::max(view_.highest_modseq, c.highest_modseq);
  if (grew) untagged(std::to_string(view_.uids.size()) + " EXISTS");  // RFC 9051 7.4.1
  for (const std::string& f : fetches) untagged(f);
}

void Server::finish(const std::string& tag, std::string text, bool expunge_ok, bool force_poll) {
  if (state_ == State::Selected && (view_.changed || force_poll)) {
    view_.changed = false;
    request_.expunge_ok = expunge_ok;
    request_.in_idle = false;
    return ask(Decision::Poll, tag, std::move(text), session_.changes(view_.highest_modseq, view_.uidnext));
  }
  if (state_ == State::Selected && expunge_ok && !view_.expunge_later.empty())
    report_expunged(std::vector<std::uint32_t>(view_.expunge_later));
  tagged(tag, "OK", text);
}

void Server::mailbox_changed() {
  view_.changed = true;
  if (state_ != State::Selected || input_ != Input::Idle || awaiting_.active()) return;
  // RFC 2177 3: while idling, changes are reported as they happen, expunges included.
  view_.changed = false;
  request_.in_idle = true;
  request_.expunge_ok = true;
  ask(Decision::Poll, idle_tag_, "", session_.changes(view_.highest_modseq, view_.uidnext));
  if (!awaiting_.active()) process();
}

void Server::leave_selected() {
  if (state_ != State::Selected) return;
  session_.unselect();
  view_ = View{};
  state_ = State::Authenticated;
}

// --- SELECT, EXAMINE, CLOSE, UNSELECT ------------------------------------------------------------

void Server::cmd_select(const std::string& tag, const Values& args) { select_or_examine(tag, args, false); }
void Server::cmd_examine(const std::string& tag, const Values& args) { select_or_examine(tag, args, true); }

void Server::select_or_examine(const std::string& tag, const Values& args, bool read_only) {
  const std::string verb = read_only ? "EXAMINE" : "SELECT";
  if (args.empty() || args.size() > 2) return bad(tag, verb + " needs a mailbox name");
  auto name = mailbox_name(args[0]);
  if (!name) return bad(tag, "Invalid mailbox name");
  if (args.size() == 2) {
    // RFC 4466 2.1: select-params; RFC 7162 3.1.8: CONDSTORE.
    if (!args[1].is_list() || args[1].items.size() != 1 || !atom(args[1].items[0]) ||
        ascii_upper(args[1].items[0].text) != "CONDSTORE")
      return bad(tag, "Unknown " + verb + " parameter");
    condstore_ = true;
  }
  if (state_ == State::Selected) {
    leave_selected();
    // RFC 9051 7.1: CLOSED, the previous mailbox is closed before the new one is selected.
    if (rev2_) untagged("OK [CLOSED] Previous mailbox closed");
  }
  request_ = Request{};
  request_.read_only = read_only;
  request_.select_name = *name;
  ask(Decision::Select, tag, verb + " completed", session_.select(*name, read_only));
}

void Server::cmd_close(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "CLOSE takes no arguments");
  // RFC 9051 6.4.1: the \Deleted messages are expunged without EXPUNGE responses, unless the
  // mailbox is read-only.
  if (view_.read_only) {
    leave_selected();
    return tagged(tag, "OK", "CLOSE completed");
  }
  request_ = Request{};
  request_.silent = true;
  ask(Decision::Expunge, tag, "CLOSE completed", session_.expunge({}));
}

void Server::cmd_unselect(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "UNSELECT takes no arguments");
  leave_selected();  // RFC 3691 2: nothing is expunged
  tagged(tag, "OK", "UNSELECT completed");
}

void Server::cmd_check(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "CHECK takes no arguments");
  finish(tag, "CHECK completed", true, true);  // RFC 3501 6.4.1: a NOOP here (writes are durable)
}

// --- EXPUNGE, STORE, COPY, MOVE --------------------------------------------------------------------

void Server::cmd_expunge(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "EXPUNGE takes no arguments");
  if (view_.read_only) return tagged(tag, "NO", "[READ-ONLY] The mailbox is read-only");
  request_ = Request{};
  ask(Decision::Expunge, tag, "EXPUNGE completed", session_.expunge({}));
}

void Server::uid_expunge(const std::string& tag, const Values& args) {
  if (args.size() != 1) return bad(tag, "UID EXPUNGE needs a UID set");
  if (!sequence_set(args[0])) return bad(tag, "Invalid UID set");
  if (view_.read_only) return tagged(tag, "NO", "[READ-ONLY] The mailbox is read-only");
  auto uids = message_set(args[0], true);
  // RFC 4315 2.1: only the named messages; none named, nothing to do.
  if (uids->empty()) return finish(tag, "UID EXPUNGE completed", true);
  request_ = Request{};
  request_.uid = true;
  ask(Decision::Expunge, tag, "UID EXPUNGE completed", session_.expunge(*uids));
}

void Server::cmd_store(const std::string& tag, const Values& args) { store(tag, args, false); }

void Server::store(const std::string& tag, const Values& args, bool uid) {
  // RFC 9051 6.4.6: STORE sequence-set [store-modifiers] store-att-flags.
  if (args.size() < 3) return bad(tag, "STORE needs a message set, an item and flags");
  if (!sequence_set(args[0])) return bad(tag, "Invalid message set");
  std::size_t i = 1;
  std::optional<std::uint64_t> unchanged_since;
  if (args[i].is_list()) {
    // RFC 7162 3.1.3: (UNCHANGEDSINCE mod-sequence-valzer).
    const auto& m = args[i].items;
    if (m.size() != 2 || !atom(m[0]) || ascii_upper(m[0].text) != "UNCHANGEDSINCE" || !number64(m[1]))
      return bad(tag, "Unknown STORE modifier");
    unchanged_since = *number64(m[1]);
    condstore_ = true;  // RFC 7162 3.1: a CONDSTORE-enabling command
    ++i;
  }
  if (i + 1 >= args.size() || !atom(args[i])) return bad(tag, "STORE needs an item and flags");
  std::string item = ascii_upper(args[i].text);
  StoreOp op = StoreOp::Replace;
  if (!item.empty() && (item[0] == '+' || item[0] == '-')) {
    op = item[0] == '+' ? StoreOp::Add : StoreOp::Remove;
    item.erase(0, 1);
  }
  bool silent = false;
  if (item == "FLAGS.SILENT") silent = true;
  else if (item != "FLAGS") return bad(tag, "Unknown STORE item " + item);
  Flags flags;
  if (i + 2 == args.size() && args[i + 1].is_list()) {
    auto f = parse_flags(args[i + 1]);
    if (!f) return bad(tag, "Invalid flag");
    flags = std::move(*f);
  } else {
    // RFC 9051 9: store-att-flags also takes flags without parentheses.
    for (std::size_t k = i + 1; k < args.size(); ++k) {
      auto f = args[k].is_list() ? std::nullopt : parse_flags(args[k]);
      if (!f) return bad(tag, "Invalid flag");
      flags.system |= f->system;
      for (std::string& kw : f->keywords) flags.keywords.push_back(std::move(kw));
    }
  }
  auto uids = message_set(args[0], uid);
  if (!uids) return bad(tag, "Invalid message sequence number");
  if (view_.read_only) return tagged(tag, "NO", "[READ-ONLY] The mailbox is read-only");
  const std::string done = uid ? "UID STORE completed" : "STORE completed";
  if (uids->empty()) return finish(tag, done, uid);
  request_ = Request{};
  request_.uid = uid;
  request_.silent = silent;
  ask(Decision::Store, tag, done, session_.store(*uids, op, flags, unchanged_since));
}

void Server::cmd_copy(const std::string& tag, const Values& args) { copy_or_move(tag, args, false, false); }
void Server::cmd_move(const std::string& tag, const Values& args) { copy_or_move(tag, args, false, true); }

void Server::copy_or_move(const std::string& tag, const Values& args, bool uid, bool move) {
  const std::string verb = std::string(uid ? "UID " : "") + (move ? "MOVE" : "COPY");
  if (args.size() != 2) return bad(tag, verb + " needs a message set and a mailbox");
  if (!sequence_set(args[0])) return bad(tag, "Invalid message set");
  auto target = mailbox_name(args[1]);
  if (!target) return bad(tag, "Invalid mailbox name");
  auto uids = message_set(args[0], uid);
  if (!uids) return bad(tag, "Invalid message sequence number");
  if (move && view_.read_only) return tagged(tag, "NO", "[READ-ONLY] The mailbox is read-only");
  if (uids->empty()) return finish(tag, verb + " completed", true);
  request_ = Request{};
  request_.uid = uid;
  request_.move = move;
  request_.select_name = *target;
  ask(Decision::Copy, tag, verb + " completed", session_.copy(*uids, *target, move));
}

void Server::cmd_uid(const std::string& tag, const Values& args) {
  // RFC 9051 6.4.9: UID COPY, MOVE, FETCH, SEARCH, STORE, EXPUNGE (RFC 4315 2.1).
  if (args.empty() || !atom(args[0])) return bad(tag, "UID needs a command");
  const std::string sub = ascii_upper(args[0].text);
  const Values rest(args.begin() + 1, args.end());
  if (sub == "COPY") return copy_or_move(tag, rest, true, false);
  if (sub == "MOVE") return copy_or_move(tag, rest, true, true);
  if (sub == "STORE") return store(tag, rest, true);
  if (sub == "EXPUNGE") return uid_expunge(tag, rest);
  if (sub == "FETCH") return fetch(tag, rest, true);
  if (sub == "SEARCH") return search(tag, rest, true);
  bad(tag, "Unknown UID command " + sub);
}

// --- APPEND ------------------------------------------------------------------------------------------

void Server::cmd_append(const std::string& tag, const Values&) {
  // The message literal is taken by append_intercept(); a whole APPEND line here has none.
  bad(tag, "APPEND needs a mailbox and a message literal");
}

bool Server::append_intercept(std::string_view piece) {
  if (state_ != State::Authenticated && state_ != State::Selected) return false;
  // The values so far end with the announced literal (still empty).
  const Values& all = parser_.partial_values();
  Values v(all.begin(), all.end() - (all.empty() ? 0 : 1));
  // RFC 6855 4: append-data =/ "UTF8" SP "(" literal8 ")": the message is the first item of a
  // list after the atom UTF8.
  bool utf8_data = false;
  if (parser_.in_list()) {
    if (all.size() < 2 || !all.back().is_list() || all.back().items.size() != 1 ||
        all.back().items[0].kind != Value::Kind::Literal || !atom(v.back()) || ascii_upper(v.back().text) != "UTF8")
      return false;
    utf8_data = true;
    v.pop_back();
  }
  // RFC 9051 6.3.12: tag APPEND mailbox [flag-list] [date-time] literal. A literal earlier in
  // the command (the mailbox name) is an ordinary one.
  if (v.size() < 3 || !atom(v[1]) || ascii_upper(v[1].text) != "APPEND") return false;
  const std::string tag = refused_tag_;
  const LiteralAnnouncement lit = parser_.literal();
  if (utf8_data && (!utf8_ || !lit.binary)) {
    // RFC 6855 4: UTF8 only once ENABLE UTF8=ACCEPT was given, with a literal8.
    refuse(piece, utf8_ ? "APPEND UTF8 takes a literal8 (~{N})" : "APPEND UTF8 needs ENABLE UTF8=ACCEPT", false);
    return true;
  }
  auto name = mailbox_name(v[2]);
  std::optional<Flags> flags = Flags{};
  std::optional<std::int64_t> date;
  bool ok = name.has_value() && v.size() <= 5;
  for (std::size_t i = 3; ok && i < v.size(); ++i) {
    if (v[i].is_list() && i == 3) {
      flags = parse_flags(v[i]);
      ok = flags.has_value();
    } else if (v[i].kind == Value::Kind::Quoted && !date) {
      date = parse_date_time(v[i].text);
      ok = date.has_value();
    } else {
      ok = false;
    }
  }
  if (!ok) {
    refuse(piece, "Invalid APPEND arguments", false);
    return true;
  }
  if (lit.size > options_.max_append) {
    // RFC 7889 4: over APPENDLIMIT, refused with NO [TOOBIG] before the octets are asked for.
    refused_no_ = true;
    refuse(piece, "[TOOBIG] The message is larger than the server takes", false);
    return true;
  }
  append_sync_ = !lit.non_synchronizing;
  append_utf8_ = utf8_data;
  request_ = Request{};
  request_.select_name = *name;
  request_.append_size = lit.size;
  ask(Decision::AppendBegin, tag, "APPEND completed", session_.append_begin(*name, *flags, date, lit.size));
  return true;
}

// --- IDLE ----------------------------------------------------------------------------------------------

void Server::cmd_idle(const std::string& tag, const Values& args) {
  if (!args.empty()) return bad(tag, "IDLE takes no arguments");
  // RFC 2177 3: a continuation, then changes as they happen until "DONE".
  write("+ idling\r\n");
  idle_tag_ = tag;
  input_ = Input::Idle;
  if (state_ == State::Selected) {
    view_.changed = false;
    request_ = Request{};
    request_.in_idle = true;
    ask(Decision::Poll, tag, "", session_.changes(view_.highest_modseq, view_.uidnext));
  }
}

void Server::idle_line(std::string_view line) {
  input_ = Input::Line;
  const std::string tag = std::move(idle_tag_);
  ++phase_;
  if (ascii_upper(line) != "DONE") return bad(tag, "IDLE ends with DONE");  // RFC 2177 3
  finish(tag, "IDLE terminated", true);
}

// --- FETCH and SEARCH ------------------------------------------------------------------------------

void Server::cmd_fetch(const std::string& tag, const Values& args) { fetch(tag, args, false); }
void Server::cmd_search(const std::string& tag, const Values& args) { search(tag, args, false); }

void Server::fetch(const std::string& tag, const Values& args, bool uid) {
  using K = FetchItem::Kind;
  if (args.size() < 2) return bad(tag, "FETCH needs a message set and items");
  if (!sequence_set(args[0])) return bad(tag, "Invalid message set");
  auto uids = message_set(args[0], uid);
  if (!uids) return bad(tag, "Invalid message sequence number");
  auto parsed = parse_fetch(Values(args.begin() + 1, args.end()));
  if (auto* error = std::get_if<std::string>(&parsed)) return bad(tag, *error);
  FetchState f;
  f.request = std::get<FetchRequest>(std::move(parsed));
  // RFC 7162 3.2.6: VANISHED needs QRESYNC, which is not offered.
  if (f.request.vanished) return bad(tag, "VANISHED needs QRESYNC");
  auto& items = f.request.items;
  auto has = [&](K k) { return std::any_of(items.begin(), items.end(), [&](const FetchItem& i) { return i.kind == k; }); };
  if (f.request.changed_since || has(K::ModSeq)) condstore_ = true;  // RFC 7162 3.1
  // RFC 9051 6.4.9: UID FETCH answers with the UID of each message.
  if (uid && !has(K::Uid)) items.insert(items.begin(), FetchItem{K::Uid, {}, std::nullopt, false});
  // The whole message (BODY[], RFC822) is its octets: no part tree needed for it.
  auto whole = [](const FetchItem& i) {
    return i.kind == K::Rfc822 ||
           (i.kind == K::BodySection && i.section.part.empty() && i.section.text == Section::Text::None);
  };
  for (const FetchItem& i : items) {
    const bool content = i.kind == K::BodySection || i.kind == K::Binary || i.kind == K::BinarySize ||
                         i.kind == K::Rfc822 || i.kind == K::Rfc822Header || i.kind == K::Rfc822Text;
    f.needs.content = f.needs.content || content;
    if (content) f.needs.content_items.push_back(i);
    f.needs.structure = f.needs.structure || (content && !whole(i)) || i.kind == K::Envelope ||
                        i.kind == K::Body || i.kind == K::BodyStructure;
  }
  // One content item, the whole message without a partial: it may stream (FetchNeeds::stream).
  const std::vector<FetchItem>& ci = f.needs.content_items;
  f.needs.stream = ci.size() == 1 && !ci[0].partial && whole(ci[0]);
  f.needs.set_seen = sets_seen(f.request) && !view_.read_only;
  f.needs.changed_since = f.request.changed_since;
  f.uid = uid;
  f.uids = std::move(*uids);
  fetch_ = std::move(f);
  pending_tag_ = tag;
  pending_done_ = uid ? "UID FETCH completed" : "FETCH completed";
  fetch_continue();
}

// Asks for the next batch before `ready` (the batch just answered, if any) is encoded: a
// Session that answers from another thread reads the next batch while this one is encoded.
// Not when the output, with `ready` in it, would be over kFetchOutputHigh: a Session that
// answers at once would then put two batches in memory.
void Server::fetch_continue(std::optional<std::vector<FetchedMessage>> ready) {
  while (true) {
    std::size_t coming = 0;
    if (ready)
      for (const FetchedMessage& m : *ready) {
        for (const OctetPiece& p : m.content) coming += p.octets.size();
        if (m.source) coming = SIZE_MAX;  // never a batch read ahead while one streams
      }
    std::optional<Verdict> next;
    if (fetch_.next < fetch_.uids.size() && output_size() + coming <= kFetchOutputHigh) {
      const std::size_t n = std::min<std::size_t>(fetch_.needs.content ? 16 : 256, fetch_.uids.size() - fetch_.next);
      std::vector<std::uint32_t> batch(fetch_.uids.begin() + fetch_.next, fetch_.uids.begin() + fetch_.next + n);
      fetch_.next += n;
      fetch_.asked = n;
      Verdict v = session_.fetch(batch, fetch_.needs);
      if (v.kind() == Verdict::Kind::Pending) {
        awaiting_.begin(Decision::Fetch);
      } else {
        next = std::move(v);
      }
    }
    if (ready) send_fetched(std::move(*ready));
    if (fetch_.out.remaining > 0 || closed()) return;  // consume_output() goes on
    if (awaiting_.active()) return;  // apply() goes on with the next batch
    if (!next) {
      if (fetch_.next < fetch_.uids.size()) {
        fetch_.waiting = true;  // consume_output() goes on
        return;
      }
      const std::string tag = std::move(pending_tag_);
      const bool uid = fetch_.uid, unknown = fetch_.unknown_cte;
      fetch_ = FetchState{};
      if (unknown) return tagged(tag, "NO", "[UNKNOWN-CTE] A part has an encoding cmail cannot undo");  // RFC 3516 4.3
      return finish(tag, std::move(pending_done_), uid);
    }
    if (!next->accepted()) {
      const std::string tag = std::move(pending_tag_);
      fetch_ = FetchState{};
      return refused(tag, *next);
    }
    ready = fetch_answer(*next);
  }
}

// The messages of a batch's answer. What the Session left unanswered is asked for again with
// the next batch; a message beyond what it answered is dropped (it comes again then).
std::vector<FetchedMessage> Server::fetch_answer(Verdict& v) {
  FetchedBatch b = v.take<FetchedBatch>();
  const std::size_t answered = std::clamp<std::size_t>(b.answered, 1, fetch_.asked);
  if (answered == fetch_.asked) return std::move(b.messages);
  const auto rest = fetch_.uids.begin() + static_cast<std::ptrdiff_t>(fetch_.next - (fetch_.asked - answered));
  const auto end = fetch_.uids.begin() + static_cast<std::ptrdiff_t>(fetch_.next);
  std::erase_if(b.messages, [&](const FetchedMessage& m) { return std::find(rest, end, m.state.uid) != end; });
  fetch_.next -= fetch_.asked - answered;
  return std::move(b.messages);
}

void Server::consume_output(std::size_t n) {
  Conversation::consume_output(n);
  if (fetch_.out.remaining > 0) {
    pump_stream();
    if (fetch_.out.remaining > 0 || closed()) return;
    encode_fetched();
    if (fetch_.out.remaining > 0 || closed()) return;
    fetch_continue();
    if (!busy()) process();
    return;
  }
  if (!fetch_.waiting || output_size() > kFetchOutputLow) return;
  fetch_.waiting = false;
  fetch_continue();
  if (!busy()) process();
}

void Server::send_fetched(std::vector<FetchedMessage> messages) {
  std::sort(messages.begin(), messages.end(),
            [](const FetchedMessage& a, const FetchedMessage& b) { return a.state.uid < b.state.uid; });
  fetch_.out = FetchState::Encoding{};
  fetch_.out.messages = std::move(messages);
  encode_fetched();
}

// Encodes what is left of the answered batch; stops while a message's literal streams from
// its Source (pump_stream() goes on as the output is taken, then calls this again).
void Server::encode_fetched() {
  using K = FetchItem::Kind;
  FetchState::Encoding& o = fetch_.out;
  const bool utf8 = rev2_ || utf8_;
  for (; o.next < o.messages.size(); ++o.next, o.item = 0) {
    FetchedMessage& m = o.messages[o.next];
    const std::uint32_t seq = seq_of(m.state.uid);
    if (!seq) continue;
    if (o.item == 0 && !o.started) {
      o.line = std::to_string(seq) + " FETCH (";
      o.first = true, o.flags_sent = false, o.modseq_sent = false;
    }
    mail::Part whole;  // without a part tree: the message as one body, for BODY[] and RFC822
    whole.body_length = m.content.empty() ? 0 : m.content.back().offset + m.content.back().octets.size();
    MessageData data;
    data.structure = m.structure ? &*m.structure : &whole;
    data.octets = OctetsView(m.structure ? m.size : whole.body_length, m.content);
    data.uid = m.state.uid;
    data.flags = flag_names(m.state.flags);
    data.internal_date = m.internal_date;
    data.modseq = m.state.modseq;
    auto add = [&](std::string_view item) {
      if (!o.first) o.line += ' ';
      o.line += item;
      o.first = false;
    };
    for (; o.item < fetch_.request.items.size(); ++o.item) {
      const FetchItem& item = fetch_.request.items[o.item];
      if (item.kind == K::Rfc822Size) {
        add("RFC822.SIZE " + std::to_string(m.size));  // the Session's count, content or not
        continue;
      }
      o.flags_sent = o.flags_sent || item.kind == K::Flags;
      o.modseq_sent = o.modseq_sent || item.kind == K::ModSeq;
      if (m.source && (item.kind == K::Rfc822 || item.kind == K::BodySection)) {
        // The whole message (FetchNeeds::stream): its literal's octets come from the Source.
        add(response_name(item) + " {" + std::to_string(m.size) + "}\r\n");
        output() += o.started ? "" : "* ";
        output() += o.line;
        o.line.clear();
        o.started = true;
        o.remaining = m.size;
        pump_stream();
        if (o.remaining > 0 || closed()) {
          ++o.item;  // resumed after this item
          return;
        }
        continue;  // all out at once (a short message)
      }
      auto text = encode_message_item(item, data, utf8);
      if (std::holds_alternative<UnknownCte>(text)) {
        fetch_.unknown_cte = true;
        continue;
      }
      add(std::get<std::string>(text));
    }
    if (m.seen_set) {
      // RFC 9051 6.4.5: the \Seen flag set by the fetch goes with it; RFC 7162 3.1.4: with
      // its new modseq.
      if (!o.flags_sent) add("FLAGS " + encode_flags(m.state.flags));
      if (condstore_ && !o.modseq_sent) add("MODSEQ (" + std::to_string(m.state.modseq) + ")");
      auto own = std::find_if(view_.reported.begin(), view_.reported.end(),
                              [&](const auto& e) { return e.first == m.state.uid; });
      if (own == view_.reported.end()) view_.reported.emplace_back(m.state.uid, m.state.modseq);
      else own->second = std::max(own->second, m.state.modseq);
    }
    o.line += ')';
    if (o.started) {
      output() += o.line;
      output() += "\r\n";
    } else if (!o.first) {
      untagged(o.line);  // nothing to say of it when its only item failed
    }
    o.started = false;
  }
  fetch_.out = FetchState::Encoding{};
}

// Moves the streamed literal's octets from the Source into the output while little of it
// waits to be sent.
void Server::pump_stream() {
  FetchState::Encoding& o = fetch_.out;
  while (o.remaining > 0 && output_size() < kFetchOutputLow) {
    std::string& out = output();
    const std::size_t before = out.size();
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(o.remaining, 64 << 10));
    Status st = o.messages[o.next].source->read(n, out);
    const std::size_t got = std::min(out.size() - before, n);
    out.resize(before + got);
    o.remaining -= got;
    if (!st.ok() || got == 0) {
      // Part of the literal is out: no response can say so now, and ending the command would
      // make the client take a truncated message as whole.
      session_.log("FETCH failed while sending a message: " + (st.ok() ? std::string("it ended early") : st.to_string()));
      fetch_ = FetchState{};
      pending_tag_.clear();
      state_ = State::Logout;
      close();
      return;
    }
  }
  if (o.remaining == 0) o.messages[o.next].source.reset();  // read through: let it go
}

void Server::search(const std::string& tag, const Values& args, bool uid) {
  auto parsed = parse_search(args, uid);
  if (auto* error = std::get_if<SearchError>(&parsed)) {
    // RFC 6855 3: after ENABLE UTF8=ACCEPT a SEARCH with CHARSET is BAD, whichever charset.
    if (utf8_ && error->bad_charset) return bad(tag, "SEARCH takes no CHARSET after ENABLE UTF8=ACCEPT");
    // RFC 9051 6.4.4: an unknown charset is NO [BADCHARSET (...)], anything else BAD.
    if (error->bad_charset) return tagged(tag, "NO", "[BADCHARSET " + std::string(kSearchCharsets) + "] " + error->text);
    return bad(tag, error->text);
  }
  search_ = std::get<SearchRequest>(std::move(parsed));
  if (utf8_ && !search_.charset.empty())  // RFC 6855 3
    return bad(tag, "SEARCH takes no CHARSET after ENABLE UTF8=ACCEPT");
  if (search_.modseq) condstore_ = true;  // RFC 7162 3.1
  request_ = Request{};
  request_.uid = uid;
  ask(Decision::Search, tag, uid ? "UID SEARCH completed" : "SEARCH completed",
      session_.search(search_.key, view_.uids, saved_));
}

// --- Verdicts of the selected state --------------------------------------------------------------------

void Server::apply_selected(Decision d, Verdict v) {
  const std::string tag = std::move(pending_tag_);
  std::string done = std::move(pending_done_);
  if (d == Decision::Poll) {
    if (v.kind() == Verdict::Kind::Failed) session_.log("changes failed: " + v.status().message());
    if (v.accepted() && state_ == State::Selected) report_changes(v.take<MailboxChanges>(), request_.expunge_ok);
    if (request_.in_idle) {
      request_.in_idle = false;
      if (view_.changed) mailbox_changed();  // changed again while it was asked
      return;
    }
    if (state_ == State::Selected && request_.expunge_ok && !view_.expunge_later.empty())
      report_expunged(std::vector<std::uint32_t>(view_.expunge_later));
    return tagged(tag, "OK", done);
  }
  if (d == Decision::AppendBegin) {
    if (v.accepted()) {
      if (append_sync_) write("+ Ready for literal data\r\n");
      append_remaining_ = request_.append_size;
      input_ = append_remaining_ ? Input::Append : Input::AppendTail;
      pending_tag_ = tag;
      pending_done_ = std::move(done);
      return;
    }
    std::string text = v.kind() == Verdict::Kind::Failed ? "[UNAVAILABLE] Temporary failure, try again later"
                       : (v.code() != RespCode::None ? "[" + std::string(to_string(v.code())) + "] " : "") + v.text();
    if (v.kind() == Verdict::Kind::Failed) session_.log("append failed: " + v.status().message());
    if (append_sync_) {
      // The client waits for "+": it sends nothing more of this command.
      reset_parser();
      input_ = Input::Line;
      return tagged(tag, "NO", text);
    }
    refused_tag_ = tag;
    refused_text_ = std::move(text);
    refused_no_ = true;
    drop_remaining_ = request_.append_size;
    input_ = drop_remaining_ ? Input::DropLiteral : Input::DropLine;
    return;
  }
  if (d == Decision::Fetch) {
    if (!v.accepted()) {
      fetch_ = FetchState{};
      return refused(tag, v);
    }
    pending_tag_ = tag;
    pending_done_ = std::move(done);
    return fetch_continue(fetch_answer(v));
  }
  if (!v.accepted()) {
    // RFC 5182 2.1: a failed SEARCH ... SAVE leaves the saved result empty.
    if (d == Decision::Search && (search_.returns & kReturnSave)) saved_.clear();
    return refused(tag, v);
  }
  switch (d) {
    case Decision::Select: {
      SelectResult r = v.take<SelectResult>();
      view_ = View{};
      view_.name = request_.select_name;
      view_.read_only = request_.read_only || r.read_only;
      view_.uidvalidity = r.uidvalidity;
      view_.uidnext = r.uidnext;
      view_.highest_modseq = r.highest_modseq;
      std::uint32_t first_unseen = 0;
      for (const MessageState& m : r.messages) {
        if (!view_.uids.empty() && m.uid <= view_.uids.back()) continue;  // UID order only
        view_.uids.push_back(m.uid);
        if (!first_unseen && !(m.flags.system & kSeen)) first_unseen = static_cast<std::uint32_t>(view_.uids.size());
      }
      if (!view_.uids.empty()) view_.uidnext = std::max(view_.uidnext, view_.uids.back() + 1);
      state_ = State::Selected;
      // RFC 9051 6.3.2 (RFC 3501 6.3.1): FLAGS, EXISTS, UIDVALIDITY, UIDNEXT, PERMANENTFLAGS,
      // and for IMAP4rev1 RECENT and UNSEEN; RFC 7162 3.1.2: HIGHESTMODSEQ or NOMODSEQ.
      Flags all{kSeen | kAnswered | kFlagged | kDeleted | kDraft, r.keywords};
      untagged("FLAGS " + encode_flags(all));
      // RFC 9051 7.1: "\\*", new keywords may be created.
      const std::string list = encode_flags(all);
      const std::string perm = view_.read_only ? "()" : list.substr(0, list.size() - 1) + " \\*)";
      untagged("OK [PERMANENTFLAGS " + perm + "] Flags permitted");
      untagged(std::to_string(view_.uids.size()) + " EXISTS");
      if (!rev2_) {
        untagged("0 RECENT");  // RFC 3501 7.3.2: this server sets no \Recent flag
        if (first_unseen) untagged("OK [UNSEEN " + std::to_string(first_unseen) + "] First unseen");
      }
      untagged("OK [UIDVALIDITY " + std::to_string(view_.uidvalidity) + "] UIDs valid");
      untagged("OK [UIDNEXT " + std::to_string(view_.uidnext) + "] Predicted next UID");
      if (condstore_) {
        if (view_.highest_modseq) untagged("OK [HIGHESTMODSEQ " + std::to_string(view_.highest_modseq) + "] Highest");
        else untagged("OK [NOMODSEQ] No modseqs here");
      }
      if (rev2_) untagged("LIST () \"/\" " + encode_mailbox(view_.name));  // RFC 9051 6.3.2
      return tagged(tag, "OK", (view_.read_only ? "[READ-ONLY] " : "[READ-WRITE] ") + done);
    }
    case Decision::Expunge: {
      auto uids = v.take<std::vector<std::uint32_t>>();
      if (request_.silent) {  // CLOSE
        leave_selected();
        return tagged(tag, "OK", done);
      }
      report_expunged(uids);
      return finish(tag, std::move(done), true);
    }
    case Decision::Store: {
      StoreResult r = v.take<StoreResult>();
      for (const MessageState& m : r.messages) {
        auto own = std::find_if(view_.reported.begin(), view_.reported.end(),
                                [&](const auto& e) { return e.first == m.uid; });
        if (own == view_.reported.end()) view_.reported.emplace_back(m.uid, m.modseq);
        else own->second = std::max(own->second, m.modseq);
        const std::uint32_t seq = seq_of(m.uid);
        // RFC 9051 6.4.6: the new flags of each message, unless .SILENT.
        if (seq && !request_.silent) untagged(fetch_flags_line(seq, m, request_.uid));
      }
      if (!r.modified.empty()) {
        // RFC 7162 3.1.3: MODIFIED names what UNCHANGEDSINCE kept, as message numbers for
        // STORE and UIDs for UID STORE.
        std::vector<std::uint32_t> names;
        for (std::uint32_t u : r.modified)
          if (const std::uint32_t seq = seq_of(u)) names.push_back(request_.uid ? u : seq);
        std::sort(names.begin(), names.end());
        if (!names.empty()) done = "[MODIFIED " + compress_numbers(names) + "] Conditional STORE failed";
      }
      return finish(tag, std::move(done), request_.uid);
    }
    case Decision::Copy: {
      CopyResult r = v.take<CopyResult>();
      if (request_.select_name == view_.name) view_.changed = true;
      const bool have_uids = r.uidvalidity && !r.source.empty() && r.source.size() == r.target.size();
      if (!request_.move) {
        // RFC 4315 3: COPYUID in the tagged OK.
        return finish(tag, have_uids ? copyuid_text(r) + " " + done : done, true);
      }
      // RFC 6851 3.3: COPYUID in an untagged OK before the expunges, then the tagged OK.
      if (have_uids) untagged("OK " + copyuid_text(r) + " Moved");
      report_expunged(r.source);
      return finish(tag, std::move(done), true);
    }
    case Decision::Search: {
      std::vector<SearchMatch> found = v.take<std::vector<SearchMatch>>();
      std::vector<SearchMatch> matches;
      for (SearchMatch& m : found)
        if ((m.seq = seq_of(m.uid))) matches.push_back(m);
      std::sort(matches.begin(), matches.end(), [](const SearchMatch& a, const SearchMatch& b) { return a.seq < b.seq; });
      // RFC 9051 6.4.4: IMAP4rev2 answers ESEARCH; RFC 4731 3.1 with RETURN.
      SearchResponse r = encode_search_response(search_, matches, tag, rev2_);
      write(r.line);
      if (r.saved) saved_ = std::move(*r.saved);
      return finish(tag, std::move(done), request_.uid);
    }
    case Decision::AppendEnd: {
      AppendResult r = v.take<AppendResult>();
      if (state_ == State::Selected && request_.select_name == view_.name) view_.changed = true;
      // RFC 4315 3: APPENDUID; RFC 9051 6.3.12: a selected target reports the new message.
      std::string text = r.uidvalidity && r.uid
                             ? "[APPENDUID " + std::to_string(r.uidvalidity) + " " + std::to_string(r.uid) + "] " + done
                             : done;
      if (state_ == State::Selected) return finish(tag, std::move(text), true);
      return tagged(tag, "OK", text);
    }
    default:
      return tagged(tag, "OK", done);
  }
}

}  // namespace cmail::imap
