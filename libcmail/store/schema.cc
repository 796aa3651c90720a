#include "schema.h"

#include <cmail/proto/message.h>

#include <string>
#include <vector>

namespace cmail::store::detail {

namespace {

// cmail's sql-update/install_master.sql for schema version 9, table for table
// (docs/compatibility.md#database-tables). Kept verbatim in meaning: names, types, defaults,
// foreign keys and the outbound view.
constexpr std::string_view kMasterV9 = R"sql(
CREATE TABLE users (
  user_name TEXT NOT NULL UNIQUE,
  user_authdata TEXT,
  user_database TEXT,
  user_alias TEXT REFERENCES users(user_name) ON DELETE SET NULL ON UPDATE CASCADE
);
CREATE TABLE addresses (
  address_expression TEXT NOT NULL,
  address_order INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL UNIQUE,
  address_router TEXT NOT NULL DEFAULT 'drop',
  address_route TEXT
);
CREATE INDEX idx_addr_router ON addresses (address_router, address_route);
CREATE TABLE mailbox (
  mail_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL UNIQUE,
  mail_user TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  mail_read BOOLEAN NOT NULL DEFAULT 0,
  mail_ident TEXT,
  mail_envelopeto TEXT NOT NULL,
  mail_envelopefrom TEXT NOT NULL,
  mail_submission TEXT NOT NULL DEFAULT (strftime('%s', 'now')),
  mail_submitter TEXT,
  mail_proto TEXT NOT NULL DEFAULT 'smtp',
  mail_data BLOB
);
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL UNIQUE,
  value TEXT
);
CREATE TABLE smtpd (
  smtpd_user TEXT PRIMARY KEY NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  smtpd_router TEXT NOT NULL DEFAULT 'drop',
  smtpd_route TEXT
);
CREATE TABLE outbox (
  mail_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL UNIQUE,
  mail_remote TEXT,
  mail_envelopefrom TEXT,
  mail_envelopeto TEXT NOT NULL,
  mail_submission INTEGER NOT NULL DEFAULT (strftime('%s', 'now')),
  mail_submitter TEXT,
  mail_data TEXT
);
CREATE TABLE popd (
  pop_user TEXT PRIMARY KEY NOT NULL UNIQUE REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  pop_lock BOOLEAN NOT NULL DEFAULT 0
);
CREATE TABLE api_access (
  api_user TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  api_permission TEXT NOT NULL,
  UNIQUE (api_user, api_permission) ON CONFLICT FAIL
);
CREATE TABLE api_address_delegates (
  api_user TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  api_expression TEXT NOT NULL,
  UNIQUE (api_user, api_expression) ON CONFLICT FAIL
);
CREATE TABLE api_user_delegates (
  api_user TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  api_delegate TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  UNIQUE (api_user, api_delegate) ON CONFLICT FAIL
);
CREATE TABLE faillog (
  fail_mail INTEGER NOT NULL REFERENCES outbox(mail_id) ON DELETE CASCADE ON UPDATE CASCADE,
  fail_message TEXT,
  fail_time TEXT NOT NULL DEFAULT (strftime('%s', 'now')),
  fail_fatal BOOLEAN NOT NULL DEFAULT 0
);
CREATE VIEW outbound AS
  SELECT mail_id, mail_remote, mail_envelopefrom, mail_envelopeto, mail_submission,
         mail_submitter, mail_data,
         COUNT(fail_mail) AS mail_failcount,
         COALESCE(MAX(fail_time), 0) AS mail_lasttry,
         COALESCE(SUM(fail_fatal), 0) AS mail_fatality
  FROM outbox LEFT JOIN faillog ON mail_id = fail_mail
  GROUP BY mail_id;
INSERT INTO meta (key, value) VALUES ('schema_version', '9');
)sql";

// cmail's sql-update/install_user.sql: the same mailbox columns, no foreign key on mail_user.
constexpr std::string_view kUserV9 = R"sql(
CREATE TABLE mailbox (
  mail_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL UNIQUE,
  mail_user TEXT NOT NULL,
  mail_read BOOLEAN NOT NULL DEFAULT 0,
  mail_ident TEXT,
  mail_envelopeto TEXT NOT NULL,
  mail_envelopefrom TEXT NOT NULL,
  mail_submission TEXT NOT NULL DEFAULT (strftime('%s', 'now')),
  mail_submitter TEXT,
  mail_proto TEXT NOT NULL DEFAULT 'smtp',
  mail_data BLOB
);
CREATE TABLE meta (
  key TEXT PRIMARY KEY NOT NULL UNIQUE,
  value TEXT
);
INSERT INTO meta (key, value) VALUES ('schema_version', '9');
)sql";

// The columns every stored message gains in version 10, in the master and in user databases.
// They carry what IMAP needs (RFC 9051 2.3): the folder, a UID unique and ascending within the
// folder, flags, a modification sequence (RFC 7162), the internal date and the size in octets.
// mail_read stays and mirrors the \Seen bit.
constexpr std::string_view kMailboxColumnsV10 = R"sql(
ALTER TABLE {s}.mailbox ADD COLUMN mail_folder INTEGER;
ALTER TABLE {s}.mailbox ADD COLUMN mail_uid INTEGER;
ALTER TABLE {s}.mailbox ADD COLUMN mail_modseq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE {s}.mailbox ADD COLUMN mail_flags INTEGER NOT NULL DEFAULT 0;
ALTER TABLE {s}.mailbox ADD COLUMN mail_keywords TEXT;
ALTER TABLE {s}.mailbox ADD COLUMN mail_internaldate INTEGER;
ALTER TABLE {s}.mailbox ADD COLUMN mail_size INTEGER;
CREATE UNIQUE INDEX {s}.idx_mailbox_folder_uid ON mailbox (mail_folder, mail_uid);
CREATE INDEX {s}.idx_mailbox_user ON mailbox (mail_user, mail_folder);
UPDATE {s}.mailbox SET
  mail_internaldate = CAST(mail_submission AS INTEGER),
  mail_size = length(CAST(mail_data AS BLOB)),
  mail_flags = CASE WHEN mail_read THEN 1 ELSE 0 END;
)sql";

// Version 10, master only: folders (one INBOX per user holding mail, UIDs assigned to existing
// mail in mail_id order), the expunge log for CONDSTORE/QRESYNC, and the queue's per-recipient
// state, next-attempt time, lease and DSN parameters (RFC 3461).
constexpr std::string_view kMasterV10 = R"sql(
CREATE TABLE folders (
  folder_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  folder_user TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  folder_name TEXT NOT NULL,
  folder_uidvalidity INTEGER NOT NULL,
  folder_uidnext INTEGER NOT NULL DEFAULT 1,
  folder_highestmodseq INTEGER NOT NULL DEFAULT 1,
  folder_subscribed BOOLEAN NOT NULL DEFAULT 1,
  folder_special TEXT,
  UNIQUE (folder_user, folder_name)
);
CREATE TABLE expunged (
  exp_folder INTEGER NOT NULL REFERENCES folders(folder_id) ON DELETE CASCADE,
  exp_uid INTEGER NOT NULL,
  exp_modseq INTEGER NOT NULL,
  PRIMARY KEY (exp_folder, exp_uid)
);
INSERT INTO folders (folder_user, folder_name, folder_uidvalidity)
  SELECT DISTINCT mail_user, 'INBOX', CAST(strftime('%s', 'now') AS INTEGER) FROM mailbox;
UPDATE mailbox SET
  mail_folder = (SELECT folder_id FROM folders WHERE folder_user = mail_user AND folder_name = 'INBOX'),
  mail_uid = (SELECT n FROM (SELECT mail_id AS id, ROW_NUMBER() OVER (PARTITION BY mail_user ORDER BY mail_id) AS n FROM mailbox) WHERE id = mailbox.mail_id);
UPDATE folders SET
  folder_uidnext = 1 + (SELECT COALESCE(MAX(mail_uid), 0) FROM mailbox WHERE mail_folder = folder_id);

ALTER TABLE outbox ADD COLUMN mail_queueid TEXT;
ALTER TABLE outbox ADD COLUMN mail_next_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN mail_lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN mail_lease_until INTEGER;
ALTER TABLE outbox ADD COLUMN mail_dsn_ret TEXT;
ALTER TABLE outbox ADD COLUMN mail_dsn_envid TEXT;
ALTER TABLE outbox ADD COLUMN mail_dsn_notify TEXT;
ALTER TABLE outbox ADD COLUMN mail_dsn_orcpt TEXT;
UPDATE outbox SET mail_next_attempt = COALESCE(
  (SELECT MAX(CAST(fail_time AS INTEGER)) FROM faillog WHERE fail_mail = mail_id), 0);
CREATE INDEX idx_outbox_due ON outbox (mail_next_attempt);
CREATE INDEX idx_faillog_mail ON faillog (fail_mail);
)sql";

// Version 11, master and user databases: what POP3 needs of every stored message.
//   mail_wiresize: the octets of the message with CRLF line ends and a final CRLF
//     (proto::wire_size, cmail/proto/message.h), which POP3 LIST and RETR report; cmail's rows have
//     no final CRLF and may hold bare LF, so this differs from mail_size.
//   mail_uidl: the POP3 unique-id the original cmail-popd showed for a row (its mail_ident),
//     kept so that clients which leave mail on the server do not fetch it all again after the
//     upgrade; NULL for mail stored since (docs/popd.md: UIDL).
// Master only: who holds a maildrop lock (pop_lock stays the flag cmail-admin popd unlock
// clears) and since when.
constexpr std::string_view kMailboxColumnsV11 = R"sql(
ALTER TABLE {s}.mailbox ADD COLUMN mail_wiresize INTEGER;
ALTER TABLE {s}.mailbox ADD COLUMN mail_uidl TEXT;
UPDATE {s}.mailbox SET mail_uidl = mail_ident;
)sql";
constexpr std::string_view kMasterV11 = R"sql(
ALTER TABLE popd ADD COLUMN pop_lock_owner TEXT;
ALTER TABLE popd ADD COLUMN pop_lock_time INTEGER;
)sql";

std::string expand(std::string_view tmpl, std::string_view schema) {
  std::string out;
  out.reserve(tmpl.size() + 64);
  for (std::size_t i = 0; i < tmpl.size();) {
    if (tmpl.compare(i, 3, "{s}") == 0) {
      out += '"';
      out += schema;
      out += '"';
      i += 3;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

void set_version(Connection& c, std::string_view schema, int version) {
  Stmt s = c.prepare("UPDATE \"" + std::string(schema) +
                     "\".meta SET value = ?1 WHERE key = 'schema_version'");
  s.bind(1, std::to_string(version)).run();
}

// One step: brings `schema` from version-1 to version.
using Step = void (*)(Connection&, DbKind, std::string_view);

void to_v10(Connection& c, DbKind kind, std::string_view schema) {
  c.exec(expand(kMailboxColumnsV10, schema));
  if (kind == DbKind::Master) c.exec(kMasterV10);
}

void to_v11(Connection& c, DbKind kind, std::string_view schema) {
  c.exec(expand(kMailboxColumnsV11, schema));
  const std::string table = "\"" + std::string(schema) + "\".mailbox";
  std::vector<std::pair<std::int64_t, std::int64_t>> sizes;
  {
    Stmt s = c.prepare("SELECT mail_id, mail_data FROM " + table);
    while (s.step()) sizes.emplace_back(s.int64(0), static_cast<std::int64_t>(proto::wire_size(s.text_view(1))));
  }
  for (auto [id, size] : sizes)
    c.prepare("UPDATE " + table + " SET mail_wiresize = ?1 WHERE mail_id = ?2").bind(1, size).bind(2, id).run();
  if (kind == DbKind::Master) c.exec(kMasterV11);
}

struct Migration {
  int version;  // the version this step produces
  Step step;
};
const Migration kMigrations[] = {
    {10, to_v10},
    {11, to_v11},
};

}  // namespace

std::string_view v9_install_sql(DbKind kind) { return kind == DbKind::Master ? kMasterV9 : kUserV9; }

int read_schema_version(Connection& c, std::string_view schema) {
  if (!c.table_exists(schema, "meta")) return 0;
  Stmt s = c.prepare("SELECT value FROM \"" + std::string(schema) +
                     "\".meta WHERE key = 'schema_version'");
  if (!s.step()) return 0;
  std::string v = s.text(0);
  s.run();
  try {
    std::size_t used = 0;
    int n = std::stoi(v, &used);
    return used == v.size() && n > 0 ? n : 0;
  } catch (...) {
    return 0;
  }
}

Status migrate(Connection& c, DbKind kind, std::string_view schema, int target,
               const std::function<void(int from)>& before) {
  // One write transaction for every step: a second process waits for it, then finds the file
  // current, so an upgrade (and its backup) happens once; a failure leaves the file as it was.
  return c.transaction([&] {
    int current = read_schema_version(c, schema);  // re-read under the lock
    bool started = false;
    for (const Migration& m : kMigrations) {
      if (m.version > target) break;
      if (current >= m.version) continue;
      if (current != m.version - 1)
        throw SqlError{Status::corruption("unexpected schema version " + std::to_string(current))};
      if (!started && before) before(current);
      started = true;
      m.step(c, kind, schema);
      set_version(c, schema, m.version);
      current = m.version;
    }
  });
}

Status create_schema(Connection& c, DbKind kind) {
  Status st = c.transaction([&] { c.exec(v9_install_sql(kind)); });
  if (!st.ok()) return st;
  return migrate(c, kind);
}

}  // namespace cmail::store::detail
