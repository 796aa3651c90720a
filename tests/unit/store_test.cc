#include "store/schema.h"
#include "testutil.h"

#include <cmail/store/mailbox.h>
#include <cmail/store/queue.h>
#include <cmail/store/store.h>

#include <sys/stat.h>

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
