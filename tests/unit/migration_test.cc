#include "store/schema.h"
#include "testutil.h"

#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/password.h>
#include <cmail/store/queue.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

using namespace cmail;
using namespace cmail::test;

namespace {

// A cmail version-9 master database with rows in every table, as the original tools left it.
void make_v9(const std::string& path) {
  auto c = store::detail::Connection::open(path, store::detail::Connection::Mode::Create, 1000);
  REQUIRE(c.has_value());
  store::detail::Connection& db = **c;
  db.exec(store::detail::v9_install_sql(store::detail::DbKind::Master));
  db.exec("PRAGMA foreign_keys = ON");
  db.prepare("INSERT INTO users VALUES ('cbdev', ?1, NULL, NULL)")
      .bind(1, store::legacy_password_hash("piAFN50Roc", "cbdev"))
      .run();
  db.exec(R"sql(
    INSERT INTO users VALUES ('other', NULL, NULL, NULL);
    INSERT INTO users VALUES ('alias', 'alias:0000', NULL, 'cbdev');
    INSERT INTO users VALUES ('withdb', NULL, '/nonexistent/user.db3', NULL);
    INSERT INTO addresses VALUES ('cb@bar.baz', 101, 'store', 'cbdev');
    INSERT INTO addresses VALUES ('cb@bar.baz', 102, 'store', 'other');
    INSERT INTO addresses VALUES ('%@redirect.test', 5, 'redirect', '(to-local)@elsewhere.test');
    INSERT INTO addresses VALUES ('no@bar.baz', 200, 'reject', 'Go away');
    INSERT INTO addresses (address_expression) VALUES ('%');
    INSERT INTO mailbox (mail_user, mail_read, mail_ident, mail_envelopeto, mail_envelopefrom, mail_submission, mail_submitter, mail_proto, mail_data)
      VALUES ('cbdev', 1, 'A1-host', 'cb@bar.baz', 'x@y.z', '1600000000', 'host', 'esmtp', 'Subject: one' || char(13) || char(10) || char(13) || char(10) || 'body'),
             ('other', 0, 'A2-host', 'cb@bar.baz', '', '1600000001', 'host', 'smtp', 'two'),
             ('cbdev', 0, NULL, 'cb@bar.baz', 'x@y.z', '1600000002', NULL, 'esmtpsa', 'Subject: drei äöü'),
             ('cbdev', 0, 'A4', 'cb@bar.baz', 'x@y.z', '1600000003', 'h', 'esmtp', 'four');
    INSERT INTO smtpd VALUES ('cbdev', 'defined', NULL), ('other', 'handoff', 'u:p@relay.test:587/starttls');
    INSERT INTO outbox (mail_remote, mail_envelopefrom, mail_envelopeto, mail_submission, mail_submitter, mail_data)
      VALUES (NULL, 'cb@bar.baz', 'far@remote.test', 1600000010, 'host', 'queued one'),
             ('relay.test:25', NULL, 'bounce@remote.test', 1600000011, NULL, 'bounce text');
    INSERT INTO faillog (fail_mail, fail_message, fail_time, fail_fatal) VALUES (1, '451 try later', '1600000020', 0), (1, '452 full', '1600000030', 0), (2, '550 no', '1600000040', 1);
    INSERT INTO popd VALUES ('cbdev', 0), ('other', 1);
    INSERT INTO api_access VALUES ('cbdev', 'admin'), ('other', 'delegate');
    INSERT INTO api_address_delegates VALUES ('other', '%@bar.baz');
    INSERT INTO api_user_delegates VALUES ('other', 'alias');
    INSERT INTO meta VALUES ('custom_key', 'kept');
  )sql");
}

// How many backups sit in `dir`.
int backups_in(const TempDir& dir) {
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    n += e.path().filename().string().find(".backup-") != std::string::npos;
  return n;
}

// Every v9 column of every table, in a stable order: what must survive the upgrade unchanged.
std::vector<std::string> v9_content(store::detail::Connection& c) {
  static const char* const kQueries[] = {
      "SELECT user_name, user_authdata, user_database, user_alias FROM users ORDER BY rowid",
      "SELECT address_expression, address_order, address_router, address_route FROM addresses ORDER BY address_order",
      "SELECT mail_id, mail_user, mail_read, mail_ident, mail_envelopeto, mail_envelopefrom, mail_submission, mail_submitter, mail_proto, mail_data FROM mailbox ORDER BY mail_id",
      "SELECT key, value FROM meta WHERE key NOT IN ('schema_version', 'directory_generation', 'uidvalidity_last') ORDER BY key",
      "SELECT smtpd_user, smtpd_router, smtpd_route FROM smtpd ORDER BY smtpd_user",
      "SELECT mail_id, mail_remote, mail_envelopefrom, mail_envelopeto, mail_submission, mail_submitter, mail_data FROM outbox ORDER BY mail_id",
      "SELECT pop_user, pop_lock FROM popd ORDER BY pop_user",
      "SELECT api_user, api_permission FROM api_access ORDER BY 1, 2",
      "SELECT api_user, api_expression FROM api_address_delegates ORDER BY 1, 2",
      "SELECT api_user, api_delegate FROM api_user_delegates ORDER BY 1, 2",
      "SELECT fail_mail, fail_message, fail_time, fail_fatal FROM faillog ORDER BY rowid",
      "SELECT * FROM outbound ORDER BY mail_id",
  };
  std::vector<std::string> rows;
  for (const char* q : kQueries) {
    auto s = c.prepare(q);
    while (s.step()) {
      std::string row = q;
      for (int i = 0; i < s.column_count(); ++i) row += " | " + s.describe(i);
      rows.push_back(row);
    }
  }
  return rows;
}

}  // namespace

TEST_CASE("migration: a cmail v9 database with data upgrades in place without losing a row") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  std::vector<std::string> before;
  {
    auto c = raw(path);
    before = v9_content(*c);
  }
  REQUIRE(before.size() > 20);

  std::vector<std::string> log;
  store::StoreOptions o;
  o.logger = [&](const std::string& line) { log.push_back(line); };
  auto store = store::Store::open(path, o);
  REQUIRE_MESSAGE(store.has_value(), store.error().to_string());
  CHECK((*store)->schema_version() == store::Store::current_schema_version());

  // A backup of the version-9 file sits next to it, and it still says version 9.
  std::string backup;
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().filename().string().starts_with("master.db3.backup-v9-")) backup = e.path().string();
  REQUIRE_FALSE(backup.empty());
  {
    auto b = raw(backup);
    CHECK(b->query_text("SELECT value FROM meta WHERE key = 'schema_version'") == "9");
    CHECK(v9_content(*b) == before);
  }
  // One line says it all: the versions and the backup (docs/compatibility.md#database-schema-version).
  CHECK(log == std::vector<std::string>{"upgraded " + path + " from schema version 9 to " +
                                        std::to_string(store::Store::current_schema_version()) +
                                        " (backup: " + backup + ")"});
  REQUIRE((*store)->upgrade().has_value());
  CHECK((*store)->upgrade()->from == 9);
  CHECK((*store)->upgrade()->to == store::Store::current_schema_version());
  CHECK((*store)->upgrade()->backup == backup);

  auto c = raw(path);
  CHECK(v9_content(*c) == before);  // every v9 row, column and storage class unchanged
  CHECK(c->query_text("SELECT value FROM meta WHERE key = 'schema_version'") ==
        std::to_string(store::Store::current_schema_version()));

  // Existing mail got IMAP metadata: INBOX per user, UIDs in mail_id order, sizes in octets,
  // \Seen from mail_read, internal date from mail_submission.
  CHECK(count(*c, "SELECT COUNT(*) FROM folders WHERE folder_name = 'INBOX'") == 2);
  auto uids = c->prepare("SELECT mail_user, mail_uid, mail_flags, mail_size, mail_internaldate FROM mailbox ORDER BY mail_id");
  std::vector<std::string> got;
  while (uids.step())
    got.push_back(uids.text(0) + " " + std::to_string(uids.int64(1)) + " " + std::to_string(uids.int64(2)) +
                  " " + std::to_string(uids.int64(3)) + " " + std::to_string(uids.int64(4)));
  CHECK(got == std::vector<std::string>{"cbdev 1 1 20 1600000000", "other 1 0 3 1600000001",
                                        "cbdev 2 0 20 1600000002", "cbdev 3 0 4 1600000003"});
  CHECK(count(*c, "SELECT folder_uidnext FROM folders WHERE folder_user = 'cbdev'") == 4);
  // Queue entries: the next attempt follows the last failure.
  CHECK(count(*c, "SELECT mail_next_attempt FROM outbox WHERE mail_id = 1") == 1600000030);

  auto problems = (*store)->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());

  // The migrated data is usable: new mail continues the UID sequence; the queue lists; the
  // legacy password still logs in and is rehashed to argon2id.
  store::Delivery d;
  d.ident = "new";
  d.envelope_from = "x@y.z";
  d.data = "five";
  d.local.push_back({"cbdev", "cb@bar.baz"});
  REQUIRE((*store)->deliver_sync(d).ok());
  CHECK(count(*c, "SELECT mail_uid FROM mailbox WHERE mail_ident = 'new'") == 4);
  auto q = (*store)->queue().list();
  REQUIRE(q.has_value());
  REQUIRE(q->size() == 2);
  CHECK((*q)[0].failures == 2);
  CHECK((*q)[1].fatal);
  CHECK_FALSE((*q)[1].envelope_from.has_value());

  auto id = (*store)->directory().authenticate("cbdev", "cbdev");
  REQUIRE_MESSAGE(id.has_value(), id.error().to_string());
  CHECK(id->authorized == "cbdev");
  CHECK(c->query_text("SELECT user_authdata FROM users WHERE user_name = 'cbdev'")->starts_with("$argon2id$"));
  CHECK((*store)->directory().authenticate("cbdev", "cbdev").has_value());
  CHECK_FALSE((*store)->directory().authenticate("cbdev", "wrong").has_value());
}

TEST_CASE("migration: opening again does not migrate or back up twice") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  { auto s = store::Store::open(path); REQUIRE(s.has_value()); CHECK((*s)->upgrade().has_value()); }
  std::vector<std::string> log;
  store::StoreOptions o;
  o.logger = [&](const std::string& line) { log.push_back(line); };
  { auto s = store::Store::open(path, o); REQUIRE(s.has_value()); CHECK_FALSE((*s)->upgrade().has_value()); }
  CHECK(log.empty());
  CHECK(backups_in(dir) == 1);
}

TEST_CASE("migration: a read-only open upgrades too, on a connection of its own, then only reads") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  std::vector<std::string> before;
  { before = v9_content(*raw(path)); }
  std::vector<std::string> log;
  store::StoreOptions o;
  o.read_only = true;
  o.logger = [&](const std::string& line) { log.push_back(line); };
  auto s = store::Store::open(path, o);
  REQUIRE_MESSAGE(s.has_value(), s.error().to_string());
  CHECK((*s)->schema_version() == store::Store::current_schema_version());
  REQUIRE((*s)->upgrade().has_value());
  const std::string backup = (*s)->upgrade()->backup;
  CHECK(backup.starts_with(path + ".backup-v9-"));
  CHECK(std::filesystem::exists(backup));
  REQUIRE(log.size() == 1);
  CHECK(log[0].starts_with("upgraded " + path + " from schema version 9 to "));
  CHECK(log[0].ends_with(" (backup: " + backup + ")"));
  // Reads see the upgraded file; writes are still refused.
  auto users = (*s)->directory().list_users("%");
  REQUIRE_MESSAGE(users.has_value(), users.error().to_string());
  CHECK(users->size() == 4);
  CHECK((*s)->deliver_sync(store::Delivery{}).code() == Status::Code::ReadOnly);
  auto problems = (*s)->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
  CHECK(v9_content(*raw(path)) == before);
  CHECK(v9_content(*raw(backup)) == before);
}

TEST_CASE("migration: refused when migrate is off, and the file is left byte for byte") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  const std::string before = read_file(path);
  store::StoreOptions o;
  o.migrate = false;
  SUBCASE("read-write") {}
  SUBCASE("read-only") { o.read_only = true; }
  auto s = store::Store::open(path, o);
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().code() == Status::Code::Unsupported);
  CHECK(s.error().message() == path + " needs an upgrade from schema version 9 (run: cmail-admin migrate)");
  CHECK(read_file(path) == before);
  CHECK(backups_in(dir) == 0);
}

TEST_CASE("migration: processes opening one old file at once: one upgrade, one backup, one line") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  std::mutex mu;
  std::vector<std::string> log;
  std::vector<std::thread> threads;
  std::atomic<int> opened{0}, upgraded{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      store::StoreOptions o;
      o.read_only = i % 2 == 1;
      o.logger = [&](const std::string& line) {
        std::lock_guard lock(mu);
        log.push_back(line);
      };
      auto s = store::Store::open(path, o);
      if (!s) return;
      ++opened;
      upgraded += (*s)->upgrade().has_value();
    });
  for (auto& t : threads) t.join();
  CHECK(opened == 4);
  CHECK(upgraded == 1);
  CHECK(log.size() == 1);
  CHECK(backups_in(dir) == 1);
}

TEST_CASE("migration: a fresh database equals a migrated one in shape, but for the place of mail_data") {
  TempDir dir;
  make_v9(dir.file("old"));
  { auto s = store::Store::open(dir.file("old")); REQUIRE(s.has_value()); }
  { auto s = open_store(dir.file("new")); }
  auto shape = [](store::detail::Connection& c) {
    std::vector<std::string> out;
    auto s = c.prepare("SELECT m.name, p.name, p.type, p.\"notnull\", COALESCE(p.dflt_value, ''), p.pk "
                       "FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type IN ('table', 'view') "
                       "ORDER BY m.name, p.name");  // columns in any order: see below
    while (s.step()) {
      std::string row;
      for (int i = 0; i < s.column_count(); ++i) row += s.describe(i) + " ";
      out.push_back(row);
    }
    return out;
  };
  auto a = raw(dir.file("old"));
  auto b = raw(dir.file("new"));
  CHECK(shape(*a) == shape(*b));
  // A new file has the message last in its rows, so that storing a large one makes no copy of
  // it (docs/store.md#large-messages); an upgraded file keeps cmail's column order.
  auto last = [](store::detail::Connection& c, const char* table) {
    return c.query_text(std::string("SELECT name FROM pragma_table_info('") + table + "') ORDER BY cid DESC LIMIT 1");
  };
  CHECK(last(*b, "mailbox") == "mail_data");
  CHECK(last(*b, "outbox") == "mail_data");
  CHECK(last(*a, "mailbox") != "mail_data");
  // The same indexes, but for the second index of the rowid that cmail's "PRIMARY KEY ... UNIQUE" made.
  const std::string indexes = "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND "
                              "tbl_name IN ('mailbox', 'outbox') AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name)";
  CHECK(a->query_text(indexes) == b->query_text(indexes));
  CHECK(count(*a, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'sqlite_autoindex_mailbox_%'") == 1);
  CHECK(count(*b, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'sqlite_autoindex_mailbox_%'") == 0);
  CHECK(count(*b, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'view' AND name = 'outbound'") == 1);
  auto st = store::Store::open(dir.file("new"));
  REQUIRE(st.has_value());
  auto problems = (*st)->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
}

TEST_CASE("migration: version 10 databases gain POP3's columns in version 11, locks keep their meaning") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  const std::string userdb = dir.file("user.db3");
  make_v9(path);
  {
    auto c = raw(path);
    REQUIRE(store::detail::migrate(*c, store::detail::DbKind::Master, "main", 10).ok());
    CHECK(c->query_text("SELECT value FROM meta WHERE key = 'schema_version'") == "10");
    CHECK_FALSE(c->column_exists("main", "popd", "pop_lock_owner"));
    c->exec("UPDATE users SET user_database = '" + userdb + "' WHERE user_name = 'other'");
  }
  {
    auto u = store::detail::Connection::open(userdb, store::detail::Connection::Mode::Create, 1000);
    REQUIRE(u.has_value());
    (*u)->exec(store::detail::v9_install_sql(store::detail::DbKind::User));
    REQUIRE(store::detail::migrate(**u, store::detail::DbKind::User, "main", 10).ok());
    (*u)->exec("INSERT INTO mailbox (mail_user, mail_ident, mail_envelopeto, mail_envelopefrom, mail_data, mail_uid) "
               "VALUES ('other', 'U1', 'o@x', 'a@b', 'line' || char(10) || 'bare', NULL)");
  }
  auto store = store::Store::open(path);
  REQUIRE_MESSAGE(store.has_value(), store.error().to_string());
  auto c = raw(path);
  CHECK(c->query_text("SELECT value FROM meta WHERE key = 'schema_version'") ==
        std::to_string(store::Store::current_schema_version()));
  // Every stored message knows its size on the wire (CRLF line ends, a final CRLF) and the
  // unique-id the original cmail-popd showed for it.
  std::vector<std::string> got;
  {
    auto rows = c->prepare("SELECT mail_ident, mail_size, mail_wiresize, mail_uidl FROM mailbox ORDER BY mail_id");
    while (rows.step())
      got.push_back(rows.describe(0) + " " + std::to_string(rows.int64(1)) + " " + std::to_string(rows.int64(2)) +
                    " " + rows.describe(3));
    rows.run();  // ends the read
  }
  CHECK(got == std::vector<std::string>{"t:A1-host 20 22 t:A1-host", "t:A2-host 3 5 t:A2-host",
                                        "null 20 22 null", "t:A4 4 6 t:A4"});
  // cmail's lock flag is unchanged: 'other' stays locked, with no holder recorded.
  CHECK(count(*c, "SELECT pop_lock FROM popd WHERE pop_user = 'other'") == 1);
  CHECK(c->query_text("SELECT pop_lock_owner FROM popd WHERE pop_user = 'other'") == std::nullopt);
  REQUIRE((*store)->directory().unlock_popd("other").ok());  // cmail-admin popd unlock
  CHECK(count(*c, "SELECT pop_lock FROM popd WHERE pop_user = 'other'") == 0);
  // The user database is upgraded when first used, its rows measured and numbered.
  auto msgs = (*store)->mailboxes().list_messages("other");
  REQUIRE_MESSAGE(msgs.has_value(), msgs.error().to_string());
  REQUIRE(msgs->size() == 2);
  CHECK((*msgs)[1].ref.database == userdb);
  CHECK((*msgs)[1].wire_size == 12);  // 9 octets, a bare LF, no final CRLF
  CHECK((*msgs)[1].legacy_uidl == std::optional<std::string>("U1"));
  auto u = raw(userdb);
  CHECK(u->query_text("SELECT value FROM meta WHERE key = 'schema_version'") ==
        std::to_string(store::Store::current_schema_version()));
  auto problems = (*store)->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
  // New mail records its wire size and no legacy unique-id.
  store::Delivery d;
  d.ident = "new";
  d.envelope_from = "x@y.z";
  d.data = "no final line end";
  d.local.push_back({"cbdev", "cb@bar.baz"});
  REQUIRE((*store)->deliver_sync(d).ok());
  CHECK(count(*c, "SELECT mail_wiresize FROM mailbox WHERE mail_ident = 'new'") == 19);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = 'new' AND mail_uidl IS NULL") == 1);
}

TEST_CASE("migration: version 12 counts every change to users, addresses and smtpd, by any program") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  auto store = store::Store::open(path);
  REQUIRE_MESSAGE(store.has_value(), store.error().to_string());
  auto c = raw(path);  // another connection, as cmail's own tools or sqlite3 would write
  auto generation = [&] { return count(*c, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'directory_generation'"); };
  std::int64_t g = generation();
  CHECK(g >= 1);
  const char* const changes[] = {
      "INSERT INTO users (user_name) VALUES ('gen')",
      "UPDATE users SET user_alias = 'other' WHERE user_name = 'gen'",
      "INSERT INTO addresses (address_expression, address_order, address_router, address_route) VALUES ('gen@x', 900, 'store', 'gen')",
      "UPDATE addresses SET address_route = 'other' WHERE address_order = 900",
      "DELETE FROM addresses WHERE address_order = 900",
      "INSERT INTO smtpd (smtpd_user, smtpd_router) VALUES ('gen', 'any')",
      "UPDATE smtpd SET smtpd_router = 'drop' WHERE smtpd_user = 'gen'",
      "DELETE FROM smtpd WHERE smtpd_user = 'gen'",
      "DELETE FROM users WHERE user_name = 'gen'",
  };
  for (const char* sql : changes) {
    INFO(sql);
    c->exec(sql);
    CHECK(generation() == g + 1);
    g = generation();
  }
  // Changes elsewhere leave it alone: a POP3 lock, a message, the queue.
  c->exec("UPDATE popd SET pop_lock = 1 - pop_lock");
  REQUIRE((*store)->deliver_sync([] {
    store::Delivery d;
    d.ident = "G1";
    d.envelope_from = "a@b.test";
    d.data = "Subject: g\r\n\r\nx\r\n";
    d.queued.push_back({std::nullopt, "r@remote.test", {}});
    return d;
  }()).ok());
  CHECK(generation() == g);
}

TEST_CASE("migration: version 14 adds the mail authentication tables; SCRAM credentials die with the password") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  auto store = store::Store::open(path);
  REQUIRE_MESSAGE(store.has_value(), store.error().to_string());
  auto c = raw(path);
  for (const char* t : {"dkim_keys", "scram", "auth_policy", "mta_sts"}) {
    CAPTURE(t);
    REQUIRE(c->table_exists("main", t));
    CHECK(count(*c, std::string("SELECT COUNT(*) FROM ") + t) == 0);
  }
  c->exec("PRAGMA foreign_keys = ON");
  REQUIRE((*store)->directory().add_user("scram14", std::string("old")).ok());
  CHECK(count(*c, "SELECT COUNT(*) FROM scram") == 1);  // add_user made them with the password
  c->exec("UPDATE users SET user_database = NULL WHERE user_name = 'scram14'");  // not the password
  CHECK(count(*c, "SELECT COUNT(*) FROM scram") == 1);
  // Any program changing the password (the original cmail-admin writes user_authdata directly).
  c->exec("UPDATE users SET user_authdata = 'salt:00' WHERE user_name = 'scram14'");
  CHECK(count(*c, "SELECT COUNT(*) FROM scram") == 0);
  c->exec("INSERT INTO scram VALUES ('scram14', 'c2FsdA==', 4096, 'AA==', 'AA==')");
  c->exec("DELETE FROM users WHERE user_name = 'scram14'");
  CHECK(count(*c, "SELECT COUNT(*) FROM scram") == 0);
  CHECK_THROWS(c->exec("INSERT INTO dkim_keys VALUES ('a.test', 's', 'rsa-sha1', 'x', 0)"));
  CHECK_THROWS(c->exec("INSERT INTO auth_policy VALUES ('a.test', 'maybe')"));
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox WHERE mail_requiretls = 0") == count(*c, "SELECT COUNT(*) FROM outbox"));
  CHECK_THROWS(c->exec("UPDATE outbox SET mail_requiretls = 2"));
  CHECK((*store)->check()->empty());
}

TEST_CASE("migration: version 13 adds the imapd table, empty: nobody has IMAP after the upgrade") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  auto store = store::Store::open(path);
  REQUIRE_MESSAGE(store.has_value(), store.error().to_string());
  auto c = raw(path);
  REQUIRE(c->table_exists("main", "imapd"));
  CHECK(count(*c, "SELECT COUNT(*) FROM imapd") == 0);
  CHECK(count(*c, "SELECT COUNT(*) FROM popd") > 0);  // POP3 access is not IMAP access
  // The row follows renames and deletions of its user (ON UPDATE / ON DELETE CASCADE).
  REQUIRE((*store)->directory().add_user("imap13", std::nullopt).ok());
  REQUIRE((*store)->directory().enable_imapd("imap13").ok());
  c->exec("PRAGMA foreign_keys = ON");
  c->exec("UPDATE users SET user_name = 'renamed' WHERE user_name = 'imap13'");
  CHECK(c->query_text("SELECT imap_user FROM imapd") == "renamed");
  c->exec("DELETE FROM users WHERE user_name = 'renamed'");
  CHECK(count(*c, "SELECT COUNT(*) FROM imapd") == 0);
  CHECK((*store)->check()->empty());
}

TEST_CASE("migration: version 12 databases gain the IMAP store in version 13: structures, subscriptions, indexes") {
  TempDir dir;
  const std::string path = dir.file("master.db3");
  make_v9(path);
  {
    auto c = raw(path);
    REQUIRE(store::detail::migrate(*c, store::detail::DbKind::Master, "main", 12).ok());
    CHECK_FALSE(c->column_exists("main", "mailbox", "mail_structure"));
    CHECK_FALSE(c->table_exists("main", "subscriptions"));
    c->exec("INSERT INTO folders (folder_user, folder_name, folder_uidvalidity, folder_subscribed) "
            "VALUES ('cbdev', 'Hidden', 2000000000, 0)");
  }
  auto store = store::Store::open(path);
  REQUIRE_MESSAGE(store.has_value(), store.error().to_string());
  REQUIRE((*store)->upgrade().has_value());
  CHECK((*store)->upgrade()->from == 12);
  auto c = raw(path);
  CHECK(c->query_text("SELECT value FROM meta WHERE key = 'schema_version'") == "14");
  // Old rows have no structure yet; subscriptions come from folder_subscribed.
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_structure IS NULL") == 4);
  auto& mb = (*store)->mailboxes();
  CHECK(*mb.subscriptions("cbdev") == std::vector<std::string>{"INBOX"});
  CHECK(*mb.subscriptions("other") == std::vector<std::string>{"INBOX"});
  CHECK_FALSE(mb.folder_state("cbdev", "Hidden")->subscribed);
  CHECK(c->query_text("SELECT value FROM meta WHERE key = 'uidvalidity_last'") == "2000000000");
  CHECK(count(*c, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('idx_mailbox_modseq', 'idx_expunged_modseq')") == 2);
  // A new folder's UIDVALIDITY comes after every one handed out.
  auto f = mb.create_folder("cbdev", "New");
  REQUIRE(f.has_value());
  CHECK(f->uidvalidity == 2000000001u);
  // The structure of an old row is parsed when first read, and kept.
  auto msgs = mb.list_messages("cbdev");
  REQUIRE(msgs.has_value());
  REQUIRE(!msgs->empty());
  auto tree = mb.read_structure((*msgs)[0].ref);
  REQUIRE(tree.has_value());
  REQUIRE(tree->envelope.has_value());
  CHECK(tree->envelope->subject == std::optional<std::string>("one"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_structure IS NULL") == 3);
  auto problems = (*store)->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
}
