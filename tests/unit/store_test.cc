#include "store/schema.h"
#include "testutil.h"

#include <cmail/store/mailbox.h>
#include <cmail/store/queue.h>
#include <cmail/store/store.h>

#include <sys/stat.h>

#include <thread>

using namespace cmail;
using namespace cmail::test;

namespace {

store::Delivery message_for(std::vector<std::string> users, std::string ident = "id1") {
  store::Delivery d;
  d.ident = ident;
  d.envelope_from = "sender@remote.test";
  d.submitter = "client.remote.test";
  d.protocol = "esmtp";
  d.data = "Received: from x\r\nSubject: hi\r\n\r\nbody";
  for (auto& u : users) d.local.push_back({u, u + "@local.test"});
  return d;
}

}  // namespace

TEST_CASE("store: a missing file is refused unless asked to create it") {
  TempDir dir;
  auto r = store::Store::open(dir.file("master.db3"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().is_not_found());
  CHECK_FALSE(std::filesystem::exists(dir.file("master.db3")));

  auto s = open_store(dir.file("master.db3"));
  CHECK(s->schema_version() == store::Store::current_schema_version());
  auto c = raw(dir.file("master.db3"));
  CHECK(c->query_text("PRAGMA journal_mode") == "wal");
  CHECK(c->query_text("SELECT value FROM meta WHERE key = 'schema_version'") ==
        std::to_string(store::Store::current_schema_version()));
  CHECK(store::Store::create(dir.file("master.db3")).code() == Status::Code::AlreadyExists);
}

TEST_CASE("store: files that are not cmail databases are refused and left untouched") {
  TempDir dir;
  SUBCASE("random bytes") {
    write_file(dir.file("x"), "this is not a database at all, just text\n");
  }
  SUBCASE("an SQLite database of another program") {
    auto c = store::detail::Connection::open(dir.file("x"), store::detail::Connection::Mode::Create, 1000);
    REQUIRE(c.has_value());
    (*c)->exec("CREATE TABLE t (a); INSERT INTO t VALUES (1)");
  }
  SUBCASE("a cmail user database") {
    auto c = store::detail::Connection::open(dir.file("x"), store::detail::Connection::Mode::Create, 1000);
    REQUIRE(c.has_value());
    (*c)->exec(store::detail::v9_install_sql(store::detail::DbKind::User));
  }
  std::string before = read_file(dir.file("x"));
  auto r = store::Store::open(dir.file("x"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == Status::Code::Corruption);
  CHECK(read_file(dir.file("x")) == before);
  CHECK_FALSE(std::filesystem::exists(dir.file("x-wal")));
}

TEST_CASE("store: a schema newer than this build is refused and left untouched") {
  TempDir dir;
  { open_store(dir.file("m")); }
  {
    auto c = raw(dir.file("m"));
    c->exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
    c->exec("PRAGMA journal_mode = DELETE");
  }
  std::string before = read_file(dir.file("m"));
  auto r = store::Store::open(dir.file("m"));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == Status::Code::Unsupported);
  CHECK(r.error().message().find("newer") != std::string::npos);
  CHECK(read_file(dir.file("m")) == before);
}

TEST_CASE("store: read-only open serves reads and refuses writes") {
  TempDir dir;
  { open_store(dir.file("m")); }
  insert_user(dir.file("m"), "alice");
  store::StoreOptions o;
  o.read_only = true;
  auto s = store::Store::open(dir.file("m"), o);
  REQUIRE(s.has_value());
  auto st = (*s)->deliver_sync(message_for({"alice"}));
  CHECK(st.code() == Status::Code::ReadOnly);
  auto folders = (*s)->mailboxes().list_folders("alice");
  REQUIRE(folders.has_value());
  CHECK(folders->empty());
}

TEST_CASE("store: deliver stores every copy and queue entry in one transaction") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  insert_user(dir.file("m"), "bob");
  store::Delivery d = message_for({"alice", "bob", "alice"});
  d.queued.push_back({std::nullopt, "far@remote.test", {"SUCCESS,FAILURE", "rfc822;far@remote.test"}});
  d.queued.push_back({std::string("smarthost:25"), "other@remote.test", {}});
  d.dsn_ret = "HDRS";
  d.dsn_envid = "ENV1";
  REQUIRE(s->deliver_sync(d).ok());

  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'alice'") == 2);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'bob'") == 1);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = 'id1' AND mail_proto = 'esmtp' "
                  "AND mail_envelopefrom = 'sender@remote.test' AND mail_size = length(CAST(mail_data AS BLOB))") == 3);
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox WHERE mail_queueid = 'id1'") == 2);
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox WHERE mail_dsn_notify = 'SUCCESS,FAILURE' AND "
                  "mail_dsn_orcpt = 'rfc822;far@remote.test' AND mail_dsn_ret = 'HDRS' AND mail_remote IS NULL") == 1);
  CHECK(count(*c, "SELECT COUNT(*) FROM outbound WHERE mail_remote = 'smarthost:25' AND mail_failcount = 0") == 1);

  // UIDs ascend per folder: alice 1, 2; bob 1.
  auto alice = s->mailboxes().list_messages("alice");
  REQUIRE(alice.has_value());
  REQUIRE(alice->size() == 2);
  CHECK((*alice)[0].uid == 1);
  CHECK((*alice)[1].uid == 2);
  CHECK((*alice)[1].modseq > (*alice)[0].modseq);
  auto folder = s->mailboxes().find_folder("alice", "INBOX");
  REQUIRE(folder.has_value());
  REQUIRE(folder->has_value());
  CHECK((*folder)->uidnext == 3);
  CHECK((*folder)->uidvalidity > 0);
  auto body = s->mailboxes().read_message((*alice)[0].ref);
  REQUIRE(body.has_value());
  CHECK(*body == d.data);
}

TEST_CASE("store: a delivery that fails for one recipient stores nothing at all") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  store::Delivery d = message_for({"alice", "nosuchuser"});
  d.queued.push_back({std::nullopt, "far@remote.test", {}});
  Status st = s->deliver_sync(d);
  CHECK(st.code() == Status::Code::Constraint);
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 0);
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox") == 0);
  CHECK(count(*c, "SELECT COUNT(*) FROM folders") == 0);
  // The next delivery is unaffected.
  CHECK(s->deliver_sync(message_for({"alice"})).ok());
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 1);
  CHECK(count(*c, "SELECT mail_uid FROM mailbox") == 1);
}

TEST_CASE("store: per-user databases receive their users' mail, with master fallback") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  // A version-9 user database, as cmail's install_user.sql makes it.
  {
    auto c = store::detail::Connection::open(dir.file("carol.db3"), store::detail::Connection::Mode::Create, 1000);
    REQUIRE(c.has_value());
    (*c)->exec(store::detail::v9_install_sql(store::detail::DbKind::User));
    (*c)->exec("INSERT INTO mailbox (mail_user, mail_ident, mail_envelopeto, mail_envelopefrom, "
               "mail_submission, mail_data) VALUES ('carol', 'old1', 'carol@x', 'a@b', '1000', 'old mail')");
  }
  insert_user(dir.file("m"), "carol", dir.file("carol.db3").c_str());
  insert_user(dir.file("m"), "dave", dir.file("missing.db3").c_str());
  REQUIRE(s->deliver_sync(message_for({"carol", "dave"})).ok());

  auto master = raw(dir.file("m"));
  auto user = raw(dir.file("carol.db3"));
  // carol's copy went to her database (upgraded to the current schema), dave's (missing file)
  // fell back to the master mailbox as cmail did; no file was created for dave.
  CHECK(count(*user, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'carol'") == 2);
  CHECK(count(*user, "SELECT value FROM meta WHERE key = 'schema_version'") == store::Store::current_schema_version());
  CHECK(count(*master, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'carol'") == 0);
  CHECK(count(*master, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'dave'") == 1);
  CHECK_FALSE(std::filesystem::exists(dir.file("missing.db3")));

  // The old row got UID 1 from the master's folder, the new one UID 2.
  auto msgs = s->mailboxes().list_messages("carol");
  REQUIRE(msgs.has_value());
  REQUIRE(msgs->size() == 2);
  CHECK((*msgs)[0].uid == 1);
  CHECK((*msgs)[0].ident == std::optional<std::string>("old1"));
  CHECK((*msgs)[1].uid == 2);
  CHECK((*msgs)[1].ref.database == dir.file("carol.db3"));
  auto body = s->mailboxes().read_message((*msgs)[0].ref);
  REQUIRE(body.has_value());
  CHECK(*body == "old mail");

  // Expunge across databases logs UIDs in the master.
  REQUIRE(s->mailboxes().expunge("carol", {(*msgs)[0].ref}).ok());
  CHECK(count(*user, "SELECT COUNT(*) FROM mailbox") == 1);
  CHECK(count(*master, "SELECT COUNT(*) FROM expunged WHERE exp_uid = 1") == 1);
}

TEST_CASE("store: flags, modseq and mail_read move together; expunge is logged") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  REQUIRE(s->deliver_sync(message_for({"alice", "alice"})).ok());
  auto msgs = s->mailboxes().list_messages("alice");
  REQUIRE(msgs.has_value());
  REQUIRE(msgs->size() == 2);
  auto before = s->mailboxes().find_folder("alice", "INBOX");
  auto modseq = s->mailboxes().set_flags((*msgs)[0].ref, store::kFlagSeen | store::kFlagFlagged, "$Important");
  REQUIRE(modseq.has_value());
  CHECK(*modseq == (*before)->highest_modseq + 1);
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT mail_read FROM mailbox WHERE mail_uid = 1") == 1);
  CHECK(c->query_text("SELECT mail_keywords FROM mailbox WHERE mail_uid = 1") == "$Important");
  REQUIRE(s->mailboxes().set_flags((*msgs)[0].ref, store::kFlagFlagged, "").has_value());
  CHECK(count(*c, "SELECT mail_read FROM mailbox WHERE mail_uid = 1") == 0);

  REQUIRE(s->mailboxes().expunge("alice", {(*msgs)[1].ref}).ok());
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 1);
  CHECK(count(*c, "SELECT exp_uid FROM expunged") == 2);
  // UIDs are never reused: the next message gets 3.
  REQUIRE(s->deliver_sync(message_for({"alice"})).ok());
  CHECK(count(*c, "SELECT MAX(mail_uid) FROM mailbox") == 3);
  auto problems = s->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
}

TEST_CASE("store: backup writes a consistent copy; check finds damage") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  REQUIRE(s->deliver_sync(message_for({"alice"})).ok());
  REQUIRE(s->backup(dir.file("copy.db3")).ok());
  CHECK(s->backup(dir.file("copy.db3")).code() == Status::Code::AlreadyExists);
  {
    auto copy = store::Store::open(dir.file("copy.db3"));
    REQUIRE(copy.has_value());
    auto msgs = (*copy)->mailboxes().list_messages("alice");
    REQUIRE(msgs.has_value());
    CHECK(msgs->size() == 1);
  }
  auto c = raw(dir.file("m"));
  c->exec("UPDATE mailbox SET mail_uid = 99");
  auto problems = s->check();
  REQUIRE(problems.has_value());
  REQUIRE(problems->size() == 1);
  CHECK((*problems)[0].find("UIDNEXT") != std::string::npos);
}

namespace {

// A mailbox row as cmail's own tools, its PHP API, site scripts or an SQLite editor insert it:
// only the version-9 columns, mail_data as TEXT, as a BLOB or NULL.
enum class As { Text, Blob };
void insert_foreign(store::detail::Connection& c, const std::string& user, std::optional<std::string> ident,
                    std::optional<std::string> data, As as = As::Text, int read = 0) {
  auto s = c.prepare(
      "INSERT INTO mailbox (mail_user, mail_read, mail_ident, mail_envelopeto, mail_envelopefrom, "
      "mail_submitter, mail_proto, mail_data) VALUES (?1, ?2, ?3, ?4, 'x@remote.test', 'script', 'smtp', ?5)");
  s.bind(1, user).bind(2, read).bind(3, ident).bind(4, user + "@local.test");
  if (!data) s.bind(5, std::nullopt);
  else if (as == As::Blob) s.bind_blob(5, *data);
  else s.bind(5, *data);
  s.run();
}

std::vector<std::uint32_t> uids_of(const std::vector<store::MessageInfo>& msgs) {
  std::vector<std::uint32_t> out;
  for (const auto& m : msgs) out.push_back(m.uid);
  return out;
}

}  // namespace

TEST_CASE("store: mail other programs insert is numbered when listed: order, sizes, unique-ids, TEXT, BLOB, NULL") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q1")).ok());  // UID 1
  auto c = raw(dir.file("m"));
  const std::string text = "Subject: text\r\n\r\nCRLF text\r\n";
  const std::string blob("Subject: blob\n\nbare LF\n\0NUL", 27);  // bare LFs, a NUL, no final line end
  insert_foreign(*c, "alice", "ext-1", text);
  insert_foreign(*c, "alice", "ext-1", blob, As::Blob);  // the same ident again
  insert_foreign(*c, "alice", std::nullopt, std::nullopt, As::Text, 1);
  // Waiting to be numbered is not damage.
  auto problems = s->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());

  const auto jobs = s->writer_stats().jobs;
  auto msgs = s->mailboxes().list_messages("alice");
  REQUIRE_MESSAGE(msgs.has_value(), msgs.error().to_string());
  CHECK(s->writer_stats().jobs == jobs + 1);  // one write numbered all three
  REQUIRE(msgs->size() == 4);
  CHECK(uids_of(*msgs) == std::vector<std::uint32_t>{1, 2, 3, 4});  // in insertion order
  const store::MessageInfo &t = (*msgs)[1], &b = (*msgs)[2], &n = (*msgs)[3];
  CHECK(t.size == static_cast<std::int64_t>(text.size()));
  CHECK(t.wire_size == static_cast<std::int64_t>(text.size()));
  CHECK(b.size == 27);
  CHECK(b.wire_size == 27 + 3 + 2);  // three bare LFs become CRLF, and a final CRLF
  CHECK(n.size == 0);
  CHECK(n.wire_size == 0);
  // The unique-id is mail_ident while no other message of the user has it.
  CHECK(t.legacy_uidl == std::optional<std::string>("ext-1"));
  CHECK_FALSE(b.legacy_uidl.has_value());
  CHECK_FALSE(n.legacy_uidl.has_value());
  CHECK(n.flags == store::kFlagSeen);  // from mail_read
  CHECK(t.modseq < b.modseq);
  CHECK(b.modseq < n.modseq);
  CHECK(t.internal_date > 0);
  CHECK(*s->mailboxes().read_message(t.ref) == text);
  CHECK(*s->mailboxes().read_message(b.ref) == blob);  // every byte, the NUL too
  CHECK(*s->mailboxes().read_message(n.ref) == "");
  auto inbox = s->mailboxes().find_folder("alice", "INBOX");
  REQUIRE(inbox.has_value());
  CHECK((*inbox)->uidnext == 5);
  CHECK((*inbox)->highest_modseq == n.modseq);

  // Nothing left to do: listing again is reads only, and UIDs stay as they are.
  auto again = s->mailboxes().list_messages("alice");
  REQUIRE(again.has_value());
  CHECK(s->writer_stats().jobs == jobs + 1);
  CHECK(uids_of(*again) == uids_of(*msgs));
  CHECK((*again)[1].legacy_uidl == t.legacy_uidl);
  REQUIRE(s->mailboxes().expunge("alice", {t.ref, n.ref}).ok());
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 2);
  CHECK(count(*c, "SELECT COUNT(*) FROM expunged") == 2);
  problems = s->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
}

TEST_CASE("store: mail other programs insert comes before mail delivered after it") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  insert_user(dir.file("m"), "bob");
  auto c = raw(dir.file("m"));
  insert_foreign(*c, "alice", "first", "inserted first\r\n");
  insert_foreign(*c, "bob", "other", "bob's\r\n");
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q2")).ok());
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'first'") == 1);
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'Q2'") == 2);
  // Only the recipient's rows are touched by a delivery; bob's wait for bob.
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'bob' AND mail_folder IS NULL") == 1);
}

TEST_CASE("store: a row another program inserts between two deliveries is numbered before the second") {
  // The writer remembers that alice had no such rows; another connection's commit must make it
  // look again (ForeignRowsCache, PRAGMA data_version).
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q1")).ok());
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q2")).ok());  // the cached answer: none
  auto c = raw(dir.file("m"));
  insert_foreign(*c, "alice", "between", "inserted between\r\n");
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q3")).ok());
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'Q2'") == 2);
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'between'") == 3);
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'Q3'") == 4);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_folder IS NULL") == 0);
  // Again, with the writer's cache warm from Q3.
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q4")).ok());
  insert_foreign(*c, "alice", "later", "later\r\n");
  REQUIRE(s->deliver_sync(message_for({"alice"}, "Q5")).ok());
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'later'") == 6);
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'Q5'") == 7);
}

TEST_CASE("store: two stores on one file number other programs' rows exactly once") {
  TempDir dir;
  auto a = open_store(dir.file("m"));
  auto b = open_store(dir.file("m"));  // another process: its own writer and connections
  insert_user(dir.file("m"), "alice");
  {
    auto c = raw(dir.file("m"));
    c->exec("BEGIN");
    for (int i = 0; i < 200; ++i) insert_foreign(*c, "alice", "id" + std::to_string(i), "message " + std::to_string(i));
    c->exec("COMMIT");
  }
  Result<std::vector<store::MessageInfo>> ra = Status::internal("not run"), rb = Status::internal("not run");
  std::thread ta([&] { ra = a->mailboxes().list_messages("alice"); });
  std::thread tb([&] { rb = b->mailboxes().list_messages("alice"); });
  ta.join();
  tb.join();
  REQUIRE_MESSAGE(ra.has_value(), ra.error().to_string());
  REQUIRE_MESSAGE(rb.has_value(), rb.error().to_string());
  std::vector<std::uint32_t> want(200);
  for (std::uint32_t i = 0; i < 200; ++i) want[i] = i + 1;
  CHECK(uids_of(*ra) == want);
  CHECK(uids_of(*rb) == want);
  auto c = raw(dir.file("m"));
  // UID n is the n-th row inserted.
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_uid <> mail_id") == 0);
  CHECK(count(*c, "SELECT folder_uidnext FROM folders") == 201);
  CHECK(count(*c, "SELECT COUNT(DISTINCT mail_uidl) FROM mailbox") == 200);
}

TEST_CASE("store: mail other programs insert into a user database is numbered from the master") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  {
    auto c = store::detail::Connection::open(dir.file("carol.db3"), store::detail::Connection::Mode::Create, 1000);
    REQUIRE(c.has_value());
    (*c)->exec(store::detail::v9_install_sql(store::detail::DbKind::User));
  }
  insert_user(dir.file("m"), "carol", dir.file("carol.db3").c_str());
  REQUIRE(s->deliver_sync(message_for({"carol"}, "Q1")).ok());  // upgrades carol.db3; UID 1
  auto master = raw(dir.file("m"));
  auto user = raw(dir.file("carol.db3"));
  insert_foreign(*master, "carol", "dup", "in the master\r\n");
  insert_foreign(*user, "carol", "dup", "in her database\n", As::Blob);
  insert_foreign(*user, "carol", "u2", std::nullopt);
  const auto jobs = s->writer_stats().jobs;
  auto msgs = s->mailboxes().list_messages("carol");
  REQUIRE_MESSAGE(msgs.has_value(), msgs.error().to_string());
  REQUIRE(msgs->size() == 4);
  CHECK(uids_of(*msgs) == std::vector<std::uint32_t>{1, 2, 3, 4});  // the master's first, as cmail listed them
  CHECK((*msgs)[1].ref.database.empty());
  CHECK((*msgs)[2].ref.database == dir.file("carol.db3"));
  CHECK((*msgs)[1].legacy_uidl == std::optional<std::string>("dup"));
  CHECK_FALSE((*msgs)[2].legacy_uidl.has_value());  // "dup" is taken, across both files
  CHECK((*msgs)[2].wire_size == 17);
  CHECK((*msgs)[3].legacy_uidl == std::optional<std::string>("u2"));
  CHECK(*s->mailboxes().read_message((*msgs)[2].ref) == "in her database\n");
  CHECK(count(*master, "SELECT folder_uidnext FROM folders WHERE folder_user = 'carol'") == 5);
  // Nothing left to do: no write, not even to look at the user database.
  auto jobs_after = s->writer_stats().jobs;
  CHECK(jobs_after == jobs + 1);
  REQUIRE(s->mailboxes().list_messages("carol").has_value());
  CHECK(s->writer_stats().jobs == jobs_after);
  REQUIRE(s->mailboxes().expunge("carol", {(*msgs)[2].ref, (*msgs)[3].ref}).ok());
  CHECK(count(*user, "SELECT COUNT(*) FROM mailbox") == 1);
  CHECK(count(*master, "SELECT COUNT(*) FROM expunged") == 2);
}

TEST_CASE("store: the check for other programs' rows is one seek on an index") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  auto c = raw(dir.file("m"));
  auto plan = c->prepare("EXPLAIN QUERY PLAN SELECT 1 FROM \"main\".mailbox WHERE mail_user = ?1 AND mail_folder IS NULL LIMIT 1");
  std::string detail;
  while (plan.step()) detail += plan.text(3) + "\n";
  CHECK(detail.find("USING COVERING INDEX idx_mailbox_user (mail_user=? AND mail_folder=?)") != std::string::npos);
}

TEST_CASE("store: fail_writes fails every write before it touches the file, until it is cleared") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  s->fail_writes(Status::no_space("the disk is full (simulated)"));
  Status st = s->deliver_sync(message_for({"alice"}));
  CHECK(st.code() == Status::Code::NoSpace);
  CHECK(st.message() == "the disk is full (simulated)");
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 0);
  s->fail_writes(Status());
  REQUIRE(s->deliver_sync(message_for({"alice"}, "id2")).ok());
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = 'id2'") == 1);
}

TEST_CASE("store: a database that cannot grow is NoSpace (SQLITE_FULL), not an I/O error") {
  TempDir dir;
  open_store(dir.file("m"));  // the schema
  auto c = raw(dir.file("m"));
  const auto pages = count(*c, "PRAGMA page_count");
  c->exec("PRAGMA max_page_count = " + std::to_string(pages));  // this connection may not grow it
  try {
    c->exec("CREATE TABLE filler (x BLOB)");
    c->exec("INSERT INTO filler VALUES (zeroblob(1000000))");
    FAIL("a write past max_page_count succeeded");
  } catch (const store::detail::SqlError& e) {
    CHECK(e.status.code() == Status::Code::NoSpace);
  }
}
