// imap::Server in the selected state: SELECT and EXAMINE, STORE, EXPUNGE, COPY and MOVE,
// APPEND streamed to the Session, IDLE, and changes made elsewhere reported at the points
// RFC 9051 7.5.1 allows. Every conversation is fed whole, byte by byte and in random splits
// (harness.h), against a Session that keeps mailboxes in memory the way a store does (UIDs,
// modseqs, an expunge log).
#include "harness.h"

#include <cmail/imap/server.h>

#include <algorithm>
#include <map>

using namespace cmail;
using namespace cmail::imap;
using namespace cmail::test;

namespace {

struct Message {
  std::uint32_t uid;
  Flags flags;
  std::uint64_t modseq;
  std::string body;
};

struct Box {
  std::uint32_t uidvalidity = 100, uidnext = 1;
  std::uint64_t modseq = 1;
  std::vector<Message> messages;
  std::vector<std::pair<std::uint32_t, std::uint64_t>> expunged;  // uid, modseq

  std::uint32_t add(std::string body, Flags flags = {}) {
    messages.push_back({uidnext, std::move(flags), ++modseq, std::move(body)});
    return uidnext++;
  }
  Message* find(std::uint32_t uid) {
    for (Message& m : messages)
      if (m.uid == uid) return &m;
    return nullptr;
  }
  void set_flags(std::uint32_t uid, Flags f) {
    Message* m = find(uid);
    m->flags = std::move(f);
    m->modseq = ++modseq;
  }
  void remove(std::uint32_t uid) {
    messages.erase(std::remove_if(messages.begin(), messages.end(), [&](const Message& m) { return m.uid == uid; }),
                   messages.end());
    expunged.emplace_back(uid, ++modseq);
  }
};

// A store in memory, shared by the sessions of one test (another "process" changes it too).
struct Mailstore {
  std::map<std::string, Box> boxes;
};

struct MailSession : Session {
  Mailstore& db;
  std::string selected;
  std::vector<std::string> calls;
  std::string appended;  // octets given to append_chunk()
  std::string append_to;
  Flags append_flags;
  std::optional<std::int64_t> append_date;
  bool aborted = false;

  explicit MailSession(Mailstore& s) : db(s) {}
  Box& box() { return db.boxes.at(selected); }

  Verdict login(const sasl::Credentials& c) override { return Verdict::user(c.authcid); }
  Verdict select(const std::string& name, bool read_only) override {
    calls.push_back((read_only ? "EXAMINE " : "SELECT ") + name);
    auto it = db.boxes.find(name);
    if (it == db.boxes.end()) return Verdict::reject(RespCode::NonExistent, "No such mailbox");
    selected = name;
    SelectResult r;
    r.uidvalidity = it->second.uidvalidity;
    r.uidnext = it->second.uidnext;
    r.highest_modseq = it->second.modseq;
    for (const Message& m : it->second.messages) r.messages.push_back({m.uid, m.flags, m.modseq});
    r.keywords = {"$Forwarded"};
    return Verdict::selected(r);
  }
  void unselect() override {
    calls.push_back("UNSELECT");
    selected.clear();
  }
  Verdict changes(std::uint64_t since, std::uint32_t) override {
    calls.push_back("CHANGES " + std::to_string(since));
    MailboxChanges c;
    c.uidnext = box().uidnext;
    c.highest_modseq = box().modseq;
    for (const Message& m : box().messages)
      if (m.modseq > since) c.messages.push_back({m.uid, m.flags, m.modseq});
    for (auto [uid, modseq] : box().expunged)
      if (modseq > since) c.expunged.push_back(uid);
    return Verdict::changes(c);
  }
  Verdict expunge(const std::vector<std::uint32_t>& uids) override {
    calls.push_back("EXPUNGE " + std::to_string(uids.size()));
    std::vector<std::uint32_t> gone;
    for (const Message& m : box().messages)
      if ((m.flags.system & kDeleted) && (uids.empty() || std::count(uids.begin(), uids.end(), m.uid)))
        gone.push_back(m.uid);
    for (std::uint32_t u : gone) box().remove(u);
    return Verdict::expunged(gone);
  }
  Verdict store(const std::vector<std::uint32_t>& uids, StoreOp op, const Flags& flags,
                std::optional<std::uint64_t> unchanged_since) override {
    calls.push_back("STORE " + std::to_string(uids.size()));
    StoreResult r;
    for (std::uint32_t uid : uids) {
      Message* m = box().find(uid);
      if (!m) continue;
      if (unchanged_since && m->modseq > *unchanged_since) {
        r.modified.push_back(uid);
        continue;
      }
      Flags f = m->flags;
      if (op == StoreOp::Replace) f = flags;
      else if (op == StoreOp::Add) f.system |= flags.system;
      else f.system &= ~flags.system;
      if (op == StoreOp::Add)
        for (const std::string& k : flags.keywords)
          if (!std::count(f.keywords.begin(), f.keywords.end(), k)) f.keywords.push_back(k);
      if (op == StoreOp::Remove)
        for (const std::string& k : flags.keywords) std::erase(f.keywords, k);
      if (!(f == m->flags)) box().set_flags(uid, f);
      r.messages.push_back({m->uid, m->flags, m->modseq});
    }
    return Verdict::stored(r);
  }
  Verdict copy(const std::vector<std::uint32_t>& uids, const std::string& target, bool move) override {
    calls.push_back((move ? "MOVE " : "COPY ") + target);
    auto it = db.boxes.find(target);
    if (it == db.boxes.end()) return Verdict::reject(RespCode::TryCreate, "No such mailbox");
    CopyResult r;
    r.uidvalidity = it->second.uidvalidity;
    std::vector<Message> sources;
    for (std::uint32_t uid : uids)
      if (Message* m = box().find(uid)) sources.push_back(*m);
    for (const Message& m : sources) {
      r.source.push_back(m.uid);
      r.target.push_back(it->second.add(m.body, m.flags));
      if (move) box().remove(m.uid);
    }
    return Verdict::copied(r);
  }
  Verdict append_begin(const std::string& name, const Flags& flags, std::optional<std::int64_t> date,
                       std::uint64_t size) override {
    calls.push_back("APPEND " + name + " " + std::to_string(size));
    if (!db.boxes.count(name)) return Verdict::reject(RespCode::TryCreate, "No such mailbox");
    append_to = name;
    append_flags = flags;
    append_date = date;
    appended.clear();
    return Verdict::accept();
  }
  void append_chunk(std::string_view bytes) override { appended += bytes; }
  Verdict append_end() override {
    Box& b = db.boxes.at(append_to);
    AppendResult r{b.uidvalidity, b.add(appended, append_flags)};
    return Verdict::appended(r);
  }
  void append_abort() override { aborted = true; }

  std::vector<FetchNeeds> fetch_needs;  // one per fetch() call
  std::size_t fetch_at_most = SIZE_MAX;  // answer the first UIDs of each batch only
  Verdict fetch(const std::vector<std::uint32_t>& asked, const FetchNeeds& needs) override {
    fetch_needs.push_back(needs);
    const std::vector<std::uint32_t> uids(asked.begin(), asked.begin() + std::min(fetch_at_most, asked.size()));
    std::vector<FetchedMessage> out;
    for (std::uint32_t uid : uids) {
      Message* m = box().find(uid);
      if (!m) continue;
      if (needs.changed_since && m->modseq <= *needs.changed_since) continue;
      FetchedMessage f;
      if (needs.set_seen && !(m->flags.system & kSeen)) {
        Flags seen = m->flags;
        seen.system |= kSeen;
        box().set_flags(uid, seen);
        f.seen_set = true;
      }
      f.state = {m->uid, m->flags, m->modseq};
      f.internal_date = 1700000000 + uid;
      f.size = m->body.size();
      if (needs.structure) f.structure = mail::parse_structure(m->body);
      if (needs.content) f.content = {{0, m->body}};
      out.push_back(std::move(f));
    }
    return Verdict::fetched(out, uids.size());
  }
  Verdict search(const SearchKey& key, const std::vector<std::uint32_t>& view,
                 const std::vector<std::uint32_t>& saved) override {
    calls.push_back("SEARCH");
    SearchContext ctx = SearchContext::of(view, saved);
    std::vector<SearchMatch> out;
    for (std::size_t i = 0; i < view.size(); ++i) {
      Message* m = box().find(view[i]);
      if (!m) continue;
      mail::Part tree = mail::parse_structure(m->body);
      StoredMessageText text(m->body, tree);
      MessageView v;
      v.seq = static_cast<std::uint32_t>(i + 1);
      v.uid = m->uid;
      v.flags = m->flags.system;
      v.keywords = m->flags.keywords;
      v.internal_date = 1700000000 + m->uid;
      v.size = m->body.size();
      v.modseq = m->modseq;
      v.text = &text;
      if (matches(key, v, ctx)) out.push_back({v.seq, v.uid, v.modseq});
    }
    return Verdict::found(out);
  }
};

struct Fixture {
  Mailstore store;
  MailSession session{store};
  ServerOptions options;
  std::unique_ptr<Server> server;
  Fixture() {
    Box& inbox = store.boxes["INBOX"];
    inbox.add("Subject: one\r\n\r\nfirst\r\n", Flags{kSeen, {}});
    inbox.add("Subject: two\r\nFrom: Bob <bob@example.org>\r\n\r\nsecond body\r\n", Flags{});
    inbox.add("Subject: three\r\nContent-Transfer-Encoding: bogus\r\n\r\nthird\r\n",
              Flags{kSeen | kFlagged, {"$Forwarded"}});
    store.boxes["Archive"].uidvalidity = 200;
    options.max_append = 4 << 20;
    server = std::make_unique<Server>(options, session);
    take_output(*server);
    say("l LOGIN alice pw\r\n");
  }
  std::string say(std::string_view bytes) {
    feed(*server, bytes);
    return take_output(*server);
  }
  void select() {
    std::string out = say("s SELECT INBOX\r\n");
    REQUIRE(out.find("s OK [READ-WRITE] SELECT completed\r\n") != std::string::npos);
  }
};

}  // namespace

TEST_CASE("imap::Server: SELECT and EXAMINE send the mailbox's state (RFC 9051 6.3.2, RFC 3501 6.3.1)") {
  SPLIT_SUBCASES();
  Fixture f;
  CHECK(f.say("a1 SELECT inbox\r\n") ==
        "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded)\r\n"
        "* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded \\*)] Flags permitted\r\n"
        "* 3 EXISTS\r\n"
        "* 0 RECENT\r\n"
        "* OK [UNSEEN 2] First unseen\r\n"
        "* OK [UIDVALIDITY 100] UIDs valid\r\n"
        "* OK [UIDNEXT 4] Predicted next UID\r\n"
        "a1 OK [READ-WRITE] SELECT completed\r\n");
  CHECK(f.server->state() == Server::State::Selected);
  CHECK(f.server->exists() == 3);
  // EXAMINE: read-only, no permanent flags; RFC 7162 3.1.8: (CONDSTORE) adds HIGHESTMODSEQ.
  std::string out = f.say("a2 EXAMINE Archive (CONDSTORE)\r\n");
  CHECK(out.find("* OK [PERMANENTFLAGS ()] Flags permitted\r\n") != std::string::npos);
  CHECK(out.find("* 0 EXISTS\r\n") != std::string::npos);
  CHECK(out.find("* OK [HIGHESTMODSEQ 1] Highest\r\n") != std::string::npos);
  CHECK(out.find("a2 OK [READ-ONLY] EXAMINE completed\r\n") != std::string::npos);
  CHECK(f.server->selected_mailbox() == "Archive");
  CHECK(f.say("a3 STORE 1 +FLAGS (\\Seen)\r\n") == "a3 BAD Invalid message sequence number\r\n");
  CHECK(f.say("a4 EXPUNGE\r\n") == "a4 NO [READ-ONLY] The mailbox is read-only\r\n");
  // A failed SELECT leaves no mailbox selected (RFC 9051 6.3.2).
  CHECK(f.say("a5 SELECT Nowhere\r\n") == "a5 NO [NONEXISTENT] No such mailbox\r\n");
  CHECK(f.server->state() == Server::State::Authenticated);
  CHECK(f.say("a6 STORE 1 FLAGS ()\r\n") == "a6 BAD STORE is not valid in this state\r\n");
  CHECK(f.session.calls == std::vector<std::string>{"SELECT INBOX", "UNSELECT", "EXAMINE Archive", "UNSELECT", "SELECT Nowhere"});
}

TEST_CASE("imap::Server: IMAP4rev2 SELECT sends LIST and no RECENT; CLOSED when another is selected") {
  SPLIT_SUBCASES();
  Fixture f;
  f.say("e ENABLE IMAP4rev2\r\n");
  std::string out = f.say("a1 SELECT INBOX\r\n");
  CHECK(out.find("RECENT") == std::string::npos);
  CHECK(out.find("UNSEEN") == std::string::npos);
  CHECK(out.find("* LIST () \"/\" INBOX\r\n") != std::string::npos);
  out = f.say("a2 SELECT Archive\r\n");
  CHECK(out.rfind("* OK [CLOSED] Previous mailbox closed\r\n", 0) == 0);  // RFC 9051 7.1
  CHECK(out.find("a2 OK [READ-WRITE] SELECT completed\r\n") != std::string::npos);
}

TEST_CASE("imap::Server: STORE and UID STORE, .SILENT, UNCHANGEDSINCE (RFC 9051 6.4.6, RFC 7162 3.1.3)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.select();
  CHECK(f.say("a1 STORE 2 +FLAGS (\\Deleted $Label)\r\n") ==
        "* 2 FETCH (FLAGS (\\Deleted $Label))\r\na1 OK STORE completed\r\n");
  CHECK(f.say("a2 STORE 1:* -FLAGS.SILENT \\Seen\r\n") == "a2 OK STORE completed\r\n");
  CHECK(f.say("a3 UID STORE 3 FLAGS (\\Answered)\r\n") ==
        "* 3 FETCH (UID 3 FLAGS (\\Answered))\r\na3 OK UID STORE completed\r\n");
  CHECK(f.store.boxes["INBOX"].find(1)->flags.system == 0);
  // UNCHANGEDSINCE turns CONDSTORE on: MODSEQ in FETCH; the message changed since is MODIFIED.
  const std::uint64_t m1 = f.store.boxes["INBOX"].find(1)->modseq;
  CHECK(f.say("a4 STORE 1,3 (UNCHANGEDSINCE " + std::to_string(m1) + ") +FLAGS (\\Flagged)\r\n") ==
        "* 1 FETCH (FLAGS (\\Flagged) MODSEQ (" + std::to_string(m1 + 3) + "))\r\n"
        "a4 OK [MODIFIED 3] Conditional STORE failed\r\n");
  CHECK(f.say("a5 STORE 9 FLAGS ()\r\n") == "a5 BAD Invalid message sequence number\r\n");
  CHECK(f.say("a6 STORE 1 FLAGS (\\Recent)\r\n") == "a6 BAD Invalid flag\r\n");
  CHECK(f.say("a7 STORE 1 BOGUS (\\Seen)\r\n") == "a7 BAD Unknown STORE item BOGUS\r\n");
  CHECK(f.say("a8 UID STORE 50:60 +FLAGS (\\Seen)\r\n") == "a8 OK UID STORE completed\r\n");
  // The poll after our own changes does not report them again.
  CHECK(f.say("a9 NOOP\r\n") == "a9 OK NOOP completed\r\n");
}

TEST_CASE("imap::Server: EXPUNGE, UID EXPUNGE, CLOSE and UNSELECT") {
  SPLIT_SUBCASES();
  Fixture f;
  f.store.boxes["INBOX"].add("four");
  f.select();
  f.say("a1 STORE 1,2,4 +FLAGS.SILENT (\\Deleted)\r\n");
  // UID EXPUNGE only the named ones (RFC 4315 2.1).
  CHECK(f.say("a2 UID EXPUNGE 2:3\r\n") == "* 2 EXPUNGE\r\na2 OK UID EXPUNGE completed\r\n");
  // Highest first: each number is the one the client still has (RFC 9051 7.5.1).
  CHECK(f.say("a3 EXPUNGE\r\n") == "* 3 EXPUNGE\r\n* 1 EXPUNGE\r\na3 OK EXPUNGE completed\r\n");
  CHECK(f.server->exists() == 1);
  CHECK(f.say("a4 UID STORE 3 +FLAGS.SILENT (\\Deleted)\r\n") == "a4 OK UID STORE completed\r\n");
  // CLOSE expunges without responses; UNSELECT does not expunge.
  CHECK(f.say("a5 CLOSE\r\n") == "a5 OK CLOSE completed\r\n");
  CHECK(f.server->state() == Server::State::Authenticated);
  CHECK(f.store.boxes["INBOX"].messages.empty());
  f.store.boxes["INBOX"].add("five", Flags{kDeleted, {}});
  f.select();
  CHECK(f.say("a6 UNSELECT\r\n") == "a6 OK UNSELECT completed\r\n");
  CHECK(f.store.boxes["INBOX"].messages.size() == 1);
  CHECK(f.say("a7 EXPUNGE\r\n") == "a7 BAD EXPUNGE is not valid in this state\r\n");
}

TEST_CASE("imap::Server: changes made elsewhere: EXISTS, FETCH, and EXPUNGE only when allowed (RFC 9051 7.5.1)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.select();
  Box& inbox = f.store.boxes["INBOX"];
  // Another process: a new message, a flag change, an expunge.
  inbox.add("four");
  inbox.set_flags(2, Flags{kFlagged, {}});
  inbox.remove(1);
  f.server->mailbox_changed();
  CHECK(f.say("").empty());  // nothing without a command in progress
  // STORE may not report the expunge: message 1 keeps its number.
  CHECK(f.say("a1 STORE 3 +FLAGS.SILENT (\\Draft)\r\n") ==
        "* 4 EXISTS\r\n* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\na1 OK STORE completed\r\n");
  CHECK(f.server->exists() == 4);
  CHECK(f.say("a2 STORE 3 -FLAGS (\\Draft)\r\n") ==
        "* 3 FETCH (FLAGS (\\Seen \\Flagged $Forwarded))\r\na2 OK STORE completed\r\n");
  // NOOP may: the expunge arrives, and the numbers shift.
  CHECK(f.say("a3 NOOP\r\n") == "* 1 EXPUNGE\r\na3 OK NOOP completed\r\n");
  CHECK(f.server->exists() == 3);
  CHECK(f.say("a4 STORE 3 +FLAGS (\\Seen)\r\n") == "* 3 FETCH (FLAGS (\\Seen))\r\na4 OK STORE completed\r\n");
  // A UID command may report an expunge (RFC 9051 7.5.1).
  inbox.remove(2);
  f.server->mailbox_changed();
  CHECK(f.say("a5 UID STORE 4 -FLAGS.SILENT (\\Seen)\r\n") == "* 1 EXPUNGE\r\na5 OK UID STORE completed\r\n");
  CHECK(f.say("a6 CHECK\r\n") == "a6 OK CHECK completed\r\n");
}

TEST_CASE("imap::Server: COPY and MOVE with COPYUID (RFC 4315 3, RFC 6851 3.3)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.select();
  CHECK(f.say("a1 COPY 1:2 Archive\r\n") == "a1 OK [COPYUID 200 1,2 1,2] COPY completed\r\n");
  CHECK(f.say("a2 UID MOVE 3 Archive\r\n") ==
        "* OK [COPYUID 200 3 3] Moved\r\n* 3 EXPUNGE\r\na2 OK UID MOVE completed\r\n");
  CHECK(f.say("a3 MOVE 1 Archive\r\n") ==
        "* OK [COPYUID 200 1 4] Moved\r\n* 1 EXPUNGE\r\na3 OK MOVE completed\r\n");
  CHECK(f.server->exists() == 1);
  CHECK(f.say("a4 COPY 1 Nowhere\r\n") == "a4 NO [TRYCREATE] No such mailbox\r\n");
  CHECK(f.say("a5 COPY 7 Archive\r\n") == "a5 BAD Invalid message sequence number\r\n");
  CHECK(f.say("a6 UID COPY 99 Archive\r\n") == "a6 OK UID COPY completed\r\n");
  // A copy into the selected mailbox shows up as a new message.
  CHECK(f.say("a7 COPY 1 INBOX\r\n") == "* 2 EXISTS\r\na7 OK [COPYUID 100 2 4] COPY completed\r\n");
  CHECK(f.store.boxes["Archive"].messages.size() == 4);
}

TEST_CASE("imap::Server: APPEND streams its message to the Session (RFC 9051 6.3.12, RFC 4315, RFC 7889)") {
  SPLIT_SUBCASES();
  Fixture f;
  const std::string msg = "Subject: hi\r\n\r\nhello\r\n";
  const std::string n = std::to_string(msg.size());
  CHECK(f.say("a1 APPEND Archive (\\Seen $Work) \" 7-Feb-1994 21:52:25 -0800\" {" + n + "}\r\n") ==
        "+ Ready for literal data\r\n");
  CHECK(f.say(msg + "\r\n") == "a1 OK [APPENDUID 200 1] APPEND completed\r\n");
  CHECK(f.session.appended == msg);
  CHECK(f.session.append_flags == Flags{kSeen, {"$Work"}});
  CHECK(f.session.append_date == std::optional<std::int64_t>(760686745));
  // Non-synchronizing; the mailbox name as a literal too.
  CHECK(f.say("a2 APPEND {7+}\r\nArchive {" + n + "+}\r\n" + msg + "\r\n") ==
        "a2 OK [APPENDUID 200 2] APPEND completed\r\n");
  // Refused before the octets: no "+" for a synchronizing literal.
  CHECK(f.say("a3 APPEND Nowhere {" + n + "}\r\n") == "a3 NO [TRYCREATE] No such mailbox\r\n");
  // ... and dropped when they come anyway, the next command understood.
  CHECK(f.say("a4 APPEND Nowhere {" + n + "+}\r\n" + msg + "\r\na5 NOOP\r\n") ==
        "a4 NO [TRYCREATE] No such mailbox\r\na5 OK NOOP completed\r\n");
  CHECK(f.say("a6 APPEND INBOX {9999999}\r\n") == "a6 NO [TOOBIG] The message is larger than the server takes\r\n");
  CHECK(f.say("a7 APPEND INBOX (\\Bogus) {3}\r\n") == "a7 BAD Invalid APPEND arguments\r\n");
  CHECK(f.say("a8 APPEND INBOX \"bad date\" {3}\r\n") == "a8 BAD Invalid APPEND arguments\r\n");
  CHECK(f.say("a9 APPEND INBOX\r\n") == "a9 BAD APPEND needs a mailbox and a message literal\r\n");
  // A message larger than the limit of other literals (1 MiB) streams.
  const std::string big(3 << 20, 'x');
  CHECK(f.say("b1 APPEND INBOX {" + std::to_string(big.size()) + "+}\r\n" + big + "\r\n") ==
        "b1 OK [APPENDUID 100 4] APPEND completed\r\n");
  CHECK(f.session.appended.size() == big.size());
  // Into the selected mailbox: EXISTS before the OK.
  f.select();
  CHECK(f.say("b2 APPEND INBOX {" + n + "+}\r\n" + msg + "\r\n") ==
        "* 5 EXISTS\r\nb2 OK [APPENDUID 100 5] APPEND completed\r\n");
  // MULTIAPPEND is not offered: the second message is refused and the first not stored.
  CHECK(f.say("b3 APPEND INBOX {1+}\r\nx {1+}\r\ny\r\n") == "b3 BAD APPEND takes one message\r\n");
  CHECK(f.session.aborted);
  CHECK(f.store.boxes["INBOX"].messages.size() == 5);
}

TEST_CASE("imap::Server: an APPEND cut off by the end of the connection is aborted") {
  Fixture f;
  f.say("a1 APPEND INBOX {10+}\r\nabc");
  CHECK(f.session.appended == "abc");
  f.server->receive_eof();
  CHECK(f.session.aborted);
  CHECK(f.store.boxes["INBOX"].messages.size() == 3);
}

TEST_CASE("imap::Server: IDLE reports changes as they happen, until DONE (RFC 2177)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.select();
  CHECK(f.say("a1 IDLE\r\n") == "+ idling\r\n");
  CHECK(f.server->idling());
  f.store.boxes["INBOX"].add("four");
  f.server->mailbox_changed();
  CHECK(take_output(*f.server) == "* 4 EXISTS\r\n");
  f.store.boxes["INBOX"].remove(1);
  f.server->mailbox_changed();
  CHECK(take_output(*f.server) == "* 1 EXPUNGE\r\n");
  CHECK(f.say("done\r\n") == "a1 OK IDLE terminated\r\n");
  CHECK(!f.server->idling());
  CHECK(f.say("a2 IDLE\r\n") == "+ idling\r\n");
  CHECK(f.say("NOOP\r\n") == "a2 BAD IDLE ends with DONE\r\n");
  // IDLE in the authenticated state: nothing to report, DONE ends it.
  f.say("a3 UNSELECT\r\n");
  CHECK(f.say("a4 IDLE\r\nDONE\r\n") == "+ idling\r\na4 OK IDLE terminated\r\n");
}

TEST_CASE("imap::Server: capabilities of the selected state are advertised after log-in") {
  Fixture f;
  std::string caps = f.say("c CAPABILITY\r\n");
  for (const char* c : {" UIDPLUS", " MOVE", " UNSELECT", " IDLE", " APPENDLIMIT=4194304"})
    CHECK(caps.find(c) != std::string::npos);
}

TEST_CASE("imap::Server: FETCH and UID FETCH (RFC 9051 6.4.5, 6.4.9)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.select();
  CHECK(f.say("a1 FETCH 1:2 (FLAGS RFC822.SIZE)\r\n") ==
        "* 1 FETCH (FLAGS (\\Seen) RFC822.SIZE 23)\r\n"
        "* 2 FETCH (FLAGS () RFC822.SIZE 58)\r\n"
        "a1 OK FETCH completed\r\n");
  CHECK(f.session.fetch_needs.back().content == false);
  CHECK(f.session.fetch_needs.back().structure == false);
  // UID FETCH answers with the UID; BODY.PEEK does not set \Seen.
  CHECK(f.say("a2 UID FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n") ==
        "* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: two\r\n\r\n)\r\n"
        "a2 OK UID FETCH completed\r\n");
  CHECK(f.store.boxes["INBOX"].find(2)->flags.system == 0);
  // BODY[TEXT] sets \Seen, and the new flags go with the answer.
  CHECK(f.say("a3 FETCH 2 BODY[TEXT]\r\n") ==
        "* 2 FETCH (BODY[TEXT] {13}\r\nsecond body\r\n FLAGS (\\Seen))\r\na3 OK FETCH completed\r\n");
  CHECK(f.session.fetch_needs.back().set_seen);
  CHECK(f.say("a4 FETCH 2 ENVELOPE\r\n").find("((\"Bob\" NIL \"bob\" \"example.org\"))") != std::string::npos);
  // BINARY of a part in an encoding that cannot be undone (RFC 3516 4.3).
  CHECK(f.say("a5 FETCH 3 BINARY.PEEK[1]\r\n") == "a5 NO [UNKNOWN-CTE] A part has an encoding cmail cannot undo\r\n");
  CHECK(f.say("a6 FETCH 4 FLAGS\r\n") == "a6 BAD Invalid message sequence number\r\n");
  CHECK(f.say("a7 FETCH 1 (FLAGS BOGUS)\r\n").rfind("a7 BAD ", 0) == 0);
  CHECK(f.say("a8 UID FETCH 10:* FLAGS\r\n") == "* 3 FETCH (UID 3 FLAGS (\\Seen \\Flagged $Forwarded))\r\na8 OK UID FETCH completed\r\n");
  // CHANGEDSINCE (RFC 7162 3.1.4.1): only what changed, with MODSEQ.
  const std::uint64_t m2 = f.store.boxes["INBOX"].find(2)->modseq;
  CHECK(f.say("a9 FETCH 1:* (FLAGS) (CHANGEDSINCE " + std::to_string(m2 - 1) + ")\r\n") ==
        "* 2 FETCH (FLAGS (\\Seen) MODSEQ (" + std::to_string(m2) + "))\r\na9 OK FETCH completed\r\n");
  // EXAMINE: nothing sets \Seen.
  f.say("b1 EXAMINE INBOX\r\n");
  f.store.boxes["INBOX"].set_flags(1, Flags{});
  f.say("b2 NOOP\r\n");
  f.say("b3 FETCH 1 BODY[]\r\n");
  CHECK(!f.session.fetch_needs.back().set_seen);
  CHECK(!f.session.fetch_needs.back().structure);  // the whole message needs no part tree
  CHECK(f.session.fetch_needs.back().content);
  CHECK(f.store.boxes["INBOX"].find(1)->flags.system == 0);
}

TEST_CASE("imap::Server: a long FETCH answer waits for its output to be taken") {
  Fixture f;
  Box& inbox = f.store.boxes["INBOX"];
  const std::string big = "Subject: big\r\n\r\n" + std::string(200 << 10, 'x') + "\r\n";
  for (int i = 0; i < 40; ++i) inbox.add(big);
  f.select();
  feed(*f.server, "a1 FETCH 1:* BODY.PEEK[]\r\na2 NOOP\r\n");
  // Batches of 16 while less than 1 MiB is waiting: not 43 messages at once.
  std::string out(f.server->pending_output());
  CHECK(out.size() < (4u << 20));
  CHECK(out.find("a1 OK") == std::string::npos);
  std::string all;
  for (int rounds = 0; rounds < 100 && all.find("a2 OK NOOP completed\r\n") == std::string::npos; ++rounds) {
    std::string chunk(f.server->pending_output());
    f.server->consume_output(chunk.size());
    all += chunk;
  }
  CHECK(all.find("* 43 FETCH (BODY[] {") != std::string::npos);
  CHECK(all.find("a1 OK FETCH completed\r\na2 OK NOOP completed\r\n") != std::string::npos);
}

TEST_CASE("imap::Server: SEARCH, UID SEARCH, ESEARCH and SAVE (RFC 9051 6.4.4, RFC 4731, RFC 5182)") {
  SPLIT_SUBCASES();
  Fixture f;
  f.select();
  CHECK(f.say("a1 SEARCH SEEN\r\n") == "* SEARCH 1 3\r\na1 OK SEARCH completed\r\n");
  CHECK(f.say("a2 UID SEARCH FROM bob\r\n") == "* SEARCH 2\r\na2 OK UID SEARCH completed\r\n");
  CHECK(f.say("a3 SEARCH RETURN (MIN MAX COUNT) ALL\r\n") ==
        "* ESEARCH (TAG \"a3\") MIN 1 MAX 3 COUNT 3\r\na3 OK SEARCH completed\r\n");
  CHECK(f.say("a4 SEARCH CHARSET KOI8-R BODY x\r\n").rfind("a4 NO [BADCHARSET (UTF-8 US-ASCII)] ", 0) == 0);
  CHECK(f.say("a5 SEARCH BOGUS\r\n").rfind("a5 BAD ", 0) == 0);
  // SAVE, then "$" in FETCH and STORE (RFC 5182 2.1).
  CHECK(f.say("a6 SEARCH RETURN (SAVE) BODY body\r\n") == "a6 OK SEARCH completed\r\n");
  CHECK(f.say("a7 FETCH $ (UID)\r\n") == "* 2 FETCH (UID 2)\r\na7 OK FETCH completed\r\n");
  CHECK(f.say("a8 STORE $ +FLAGS (\\Deleted)\r\n") == "* 2 FETCH (FLAGS (\\Deleted))\r\na8 OK STORE completed\r\n");
  CHECK(f.say("a9 EXPUNGE\r\n") == "* 2 EXPUNGE\r\na9 OK EXPUNGE completed\r\n");
  CHECK(f.say("b1 FETCH $ (UID)\r\n") == "b1 OK FETCH completed\r\n");  // the saved message is gone
  // IMAP4rev2 answers ESEARCH.
  f.say("b2 UNSELECT\r\nb3 ENABLE IMAP4rev2\r\n");
  f.select();
  CHECK(f.say("b4 UID SEARCH ALL\r\n") == "* ESEARCH (TAG \"b4\") UID ALL 1,3\r\nb4 OK UID SEARCH completed\r\n");
}

// A Session that answers FETCH later, as a store-backed one does from its worker thread.
struct LaterSession : MailSession {
  using MailSession::MailSession;
  Server* server = nullptr;
  std::optional<Verdict> held;             // the answer to give next
  std::vector<std::size_t> output_asked;   // the engine's pending output at each fetch()
  Verdict fetch(const std::vector<std::uint32_t>& uids, const FetchNeeds& needs) override {
    output_asked.push_back(server->pending_output().size());
    held = MailSession::fetch(uids, needs);
    return Verdict::pending();
  }
};

TEST_CASE("imap::Server: a long FETCH asks for the next batch before it encodes the last, and takes partial answers") {
  SUBCASE("a Session answering part of each batch gives the same answer in more calls") {
    Fixture f;
    for (int i = 0; i < 40; ++i) f.store.boxes["INBOX"].add("Subject: m" + std::to_string(i) + "\r\n\r\nbody\r\n");
    f.select();
    const std::string whole = f.say("a1 FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER])\r\n");
    CHECK(f.session.fetch_needs.size() == 3);  // 43 messages with content: 16 + 16 + 11
    f.session.fetch_at_most = 5;
    f.session.fetch_needs.clear();
    CHECK(f.say("a1 FETCH 1:* (UID RFC822.SIZE BODY.PEEK[HEADER])\r\n") == whole);
    CHECK(f.session.fetch_needs.size() == 9);  // 5 at a time
    CHECK(whole.find("* 43 FETCH (UID 43 ") != std::string::npos);
  }
  SUBCASE("the next batch is asked for while the answered one is not yet encoded") {
    Mailstore store;
    Box& inbox = store.boxes["INBOX"];
    for (int i = 0; i < 40; ++i) inbox.add("Subject: m" + std::to_string(i) + "\r\n\r\nbody\r\n");
    LaterSession session(store);
    Server server(ServerOptions{}, session);
    session.server = &server;
    server.receive("l LOGIN alice pw\r\ns SELECT INBOX\r\n");
    REQUIRE(take_output(server).find("s OK [READ-WRITE]") != std::string::npos);
    server.receive("f FETCH 1:* BODY.PEEK[]\r\n");
    REQUIRE(session.output_asked.size() == 1);
    std::string out = take_output(server);
    CHECK(out.empty());
    for (std::size_t round = 1; session.held; ++round) {
      Verdict v = std::move(*session.held);
      session.held.reset();
      REQUIRE(server.complete(std::move(v)).ok());
      // Asked for batch round + 1 before batch `round` was encoded: nothing was pending then.
      if (round < 3) {
        REQUIRE(session.output_asked.size() == round + 1);
        CHECK(session.output_asked[round] == 0);
      }
      const std::string part = take_output(server);
      std::size_t fetched = 0;
      for (auto at = part.find(" FETCH ("); at != std::string::npos; at = part.find(" FETCH (", at + 1)) ++fetched;
      CHECK(fetched == (round < 3 ? 16u : 8u));  // batch `round`, encoded after the next was asked
      out += part;
    }
    CHECK(session.output_asked.size() == 3);
    for (int seq = 1; seq <= 40; ++seq) {
      const auto at = out.find("* " + std::to_string(seq) + " FETCH (BODY[] ");
      REQUIRE(at != std::string::npos);
      if (seq > 1) CHECK(at > out.find("* " + std::to_string(seq - 1) + " FETCH (BODY[] "));
    }
    CHECK(out.ends_with(")\r\nf OK FETCH completed\r\n"));
  }
}

// A message given as a Source (FetchNeeds::stream), read in pieces of at most 1000 octets;
// `fail_at`: an error once that many octets were given.
struct MemorySource : proto::Source {
  std::string text;
  std::size_t at = 0, fail_at = SIZE_MAX;
  explicit MemorySource(std::string t) : text(std::move(t)) {}
  Status read(std::size_t max, std::string& out) override {
    if (at >= fail_at) return Status::io_error("disk gone");
    const std::size_t n = std::min({max, std::size_t{1000}, text.size() - at});
    out.append(text, at, n);
    at += n;
    return Status();
  }
  std::optional<std::uint64_t> size() const override { return text.size(); }
};

struct StreamingSession : MailSession {
  using MailSession::MailSession;
  std::size_t fail_at = SIZE_MAX;
  std::vector<bool> streamable;  // FetchNeeds::stream of each fetch()
  Verdict fetch(const std::vector<std::uint32_t>& uids, const FetchNeeds& needs) override {
    streamable.push_back(needs.stream);
    Verdict v = MailSession::fetch(uids, needs);
    if (!needs.stream) return v;
    FetchedBatch b = v.take<FetchedBatch>();
    for (FetchedMessage& m : b.messages) {
      if (m.content.empty() || m.content[0].octets.size() < 1000) continue;
      auto source = std::make_shared<MemorySource>(std::move(m.content[0].octets));
      source->fail_at = fail_at;
      m.content.clear();
      m.source = std::move(source);
    }
    return Verdict::fetched(std::move(b.messages), b.answered);
  }
};

TEST_CASE("imap::Server: BODY[] of a large message streams from the Session's Source as the output is taken") {
  Mailstore store;
  Box& inbox = store.boxes["INBOX"];
  const std::string big = "Subject: big\r\n\r\n" + std::string(5 << 20, 'x') + "\r\n";
  inbox.add("Subject: small\r\n\r\nhi\r\n");
  inbox.add(big);
  inbox.add("Subject: after\r\n\r\nbye\r\n");
  StreamingSession session(store);
  Server server(ServerOptions{}, session);
  server.receive("l LOGIN alice pw\r\ns SELECT INBOX\r\n");
  REQUIRE(take_output(server).find("s OK [READ-WRITE]") != std::string::npos);

  SUBCASE("the answer is the one content would give, and little of it waits at any time") {
    server.receive("f FETCH 1:3 (UID BODY.PEEK[] FLAGS)\r\nn NOOP\r\n");
    std::string out;
    std::size_t most = 0;
    for (int round = 0; round < 10000 && out.find("n OK") == std::string::npos; ++round) {
      std::string_view pending = server.pending_output();
      most = std::max(most, pending.size());
      const std::size_t n = std::min<std::size_t>(pending.size(), 100000);  // a slow socket
      out.append(pending.substr(0, n));
      server.consume_output(n);
    }
    CHECK(most < (512u << 10));  // never the 5 MiB message at once
    CHECK(session.streamable == std::vector<bool>{true});
    const std::string want = "* 1 FETCH (UID 1 BODY[] {22}\r\nSubject: small\r\n\r\nhi\r\n FLAGS ())\r\n"
                             "* 2 FETCH (UID 2 BODY[] {" + std::to_string(big.size()) + "}\r\n" + big + " FLAGS ())\r\n"
                             "* 3 FETCH (UID 3 BODY[] {23}\r\nSubject: after\r\n\r\nbye\r\n FLAGS ())\r\n"
                             "f OK FETCH completed\r\nn OK NOOP completed\r\n";
    const auto differ = std::mismatch(out.begin(), out.end(), want.begin(), want.end());
    const std::size_t at = static_cast<std::size_t>(differ.first - out.begin());
    CAPTURE(at);
    CHECK(out.size() == want.size());
    CHECK(out.substr(at > 40 ? at - 40 : 0, 80) == want.substr(at > 40 ? at - 40 : 0, 80));
  }
  SUBCASE("only a whole message alone streams") {
    CHECK(take_output(server).empty());
    server.receive("f FETCH 2 (BODY.PEEK[]<0.10> BODY.PEEK[HEADER])\r\n");
    CHECK(take_output(server) == "* 2 FETCH (BODY[]<0> {10}\r\nSubject: b BODY[HEADER] {16}\r\nSubject: big\r\n\r\n)\r\n"
                                 "f OK FETCH completed\r\n");
    CHECK(session.streamable == std::vector<bool>{false});
  }
  SUBCASE("a Source that fails midway closes the connection: no OK for a truncated message") {
    session.fail_at = 300000;
    server.receive("f FETCH 2 RFC822\r\n");
    std::string out;
    for (int round = 0; round < 1000 && !server.closed(); ++round) out += take_output(server);
    out += take_output(server);
    CHECK(server.closed());
    CHECK(out.starts_with("* 2 FETCH (RFC822 {" + std::to_string(big.size()) + "}\r\nSubject: big"));
    CHECK(out.find("f OK") == std::string::npos);
    CHECK(out.size() < big.size());
  }
}
