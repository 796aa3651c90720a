#include "schema.h"

#include <cmail/proto/message.h>

#include <algorithm>
#include <cctype>
#include <optional>
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

// Version 12, master only: the directory generation, a counter in meta that every change to
// the tables routing reads (users, addresses, smtpd) bumps, by whatever program makes it, so
// that a cache of those lookups knows when to start over (docs/store.md#the-directory-cache).
// SQLite triggers are FOR EACH ROW: a statement changing n rows adds n.
constexpr std::string_view kMasterV12 = R"sql(
INSERT OR REPLACE INTO meta (key, value) VALUES ('directory_generation', '1');
)sql";
constexpr const char* kGenerationTables[] = {"users", "addresses", "smtpd"};

// Version 13, master only, the IMAP part: who may use cmail-imapd, as popd says who may use
// POP3 (docs/imapd.md#access). A row follows its user's renames and goes with the user.
constexpr std::string_view kMasterV13Imapd = R"sql(
CREATE TABLE imapd (
  imap_user TEXT PRIMARY KEY NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE
);
)sql";

// Version 13, the mail part (IMAP), master and user databases:
//   mail_structure: mail::encode_structure() of the message (cmail/mail/structure.h), written
//     when the message is stored and, for older rows, when first read (NULL until then);
//   idx_mailbox_modseq: what changed in a folder since a modseq (RFC 7162 3.1.4, 3.2.5) is one
//     range of this index, not a scan of the folder.
// Master only: subscriptions, names a user subscribed to, which need not exist as folders
// (RFC 9051 6.3.7), filled from folder_subscribed; idx_expunged_modseq, the UIDs expunged
// since a modseq (RFC 7162 3.2.10); meta.uidvalidity_last, the largest
// UIDVALIDITY ever handed out, so that one of a deleted folder is never given again
// (RFC 9051 2.3.1.1).
constexpr std::string_view kMailboxColumnsV13 = R"sql(
ALTER TABLE {s}.mailbox ADD COLUMN mail_structure BLOB;
CREATE INDEX {s}.idx_mailbox_modseq ON mailbox (mail_folder, mail_modseq);
)sql";
constexpr std::string_view kMasterV13Mail = R"sql(
CREATE TABLE subscriptions (
  sub_user TEXT NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  sub_name TEXT NOT NULL,
  PRIMARY KEY (sub_user, sub_name)
);
CREATE INDEX idx_expunged_modseq ON expunged (exp_folder, exp_modseq);
INSERT OR IGNORE INTO subscriptions (sub_user, sub_name)
  SELECT folder_user, folder_name FROM folders WHERE folder_subscribed;
INSERT OR REPLACE INTO meta (key, value)
  VALUES ('uidvalidity_last', (SELECT CAST(COALESCE(MAX(folder_uidvalidity), 0) AS TEXT) FROM folders));
)sql";

// Version 14, master only: what mail authentication keeps (issue 14, docs/auth.md).
//   dkim_keys: DKIM signing keys per domain and selector (RFC 6376 3.1), the private key as PEM
//     (cmail/crypto/keys.h); several selectors of one domain all sign (key rotation, or RSA
//     beside Ed25519, RFC 8463 6). Domains lower-case.
//   scram: a user's SCRAM-SHA-256 credentials (RFC 5802 3, RFC 7677): the salt, the iteration
//     count and base64 StoredKey and ServerKey, made when the password is set, never the
//     password. A trigger removes them whenever user_authdata changes by any program (the
//     original cmail-admin too), so an old password can never log in through SCRAM.
//   mta_sts: the MTA-STS policies the dispatchers fetched (RFC 8461 5.1: they outlive restarts),
//     per recipient domain: the TXT id, the policy file as fetched, when, and until when valid.
//   outbox.mail_requiretls: what the sender asked of TLS (RFC 8689): 1 REQUIRETLS on MAIL FROM
//     (4.1), -1 the header field "TLS-Required: No" (5), 0 neither (store::TlsRequired).
//   auth_policy: what intake does with mail that fails DMARC (RFC 7489 6.3 p=) per recipient
//     domain ("*": every other domain): report (only the Authentication-Results field) or
//     enforce (p=reject refused at the end of DATA, p=quarantine filed into Junk).
constexpr std::string_view kMasterV14 = R"sql(
CREATE TABLE dkim_keys (
  dkim_domain TEXT NOT NULL,
  dkim_selector TEXT NOT NULL,
  dkim_algorithm TEXT NOT NULL CHECK (dkim_algorithm IN ('rsa-sha256', 'ed25519-sha256')),
  dkim_private_key TEXT NOT NULL,
  dkim_created INTEGER NOT NULL,
  PRIMARY KEY (dkim_domain, dkim_selector)
);
CREATE TABLE scram (
  scram_user TEXT PRIMARY KEY NOT NULL REFERENCES users(user_name) ON DELETE CASCADE ON UPDATE CASCADE,
  scram_salt TEXT NOT NULL,
  scram_iterations INTEGER NOT NULL,
  scram_stored_key TEXT NOT NULL,
  scram_server_key TEXT NOT NULL
);
CREATE TRIGGER scram_password_changed AFTER UPDATE OF user_authdata ON users
  WHEN OLD.user_authdata IS NOT NEW.user_authdata
  BEGIN DELETE FROM scram WHERE scram_user = NEW.user_name; END;
CREATE TABLE auth_policy (
  policy_domain TEXT PRIMARY KEY NOT NULL,
  policy_action TEXT NOT NULL CHECK (policy_action IN ('report', 'enforce'))
);
CREATE TABLE mta_sts (
  sts_domain TEXT PRIMARY KEY NOT NULL,
  sts_id TEXT NOT NULL,
  sts_policy TEXT NOT NULL,
  sts_fetched INTEGER NOT NULL,
  sts_expires INTEGER NOT NULL
);
ALTER TABLE outbox ADD COLUMN mail_requiretls INTEGER NOT NULL DEFAULT 0 CHECK (mail_requiretls IN (-1, 0, 1));
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

// The directory generation (version 12) counts changes to these too: intake caches them.
constexpr const char* kGenerationTablesV14[] = {"dkim_keys", "auth_policy"};

void generation_triggers(Connection& c, const char* table) {
  for (const char* event : {"INSERT", "UPDATE", "DELETE"}) {
    std::string name = std::string("directory_generation_") + table + "_" + event;
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    c.exec("CREATE TRIGGER " + name + " AFTER " + event + " ON " + table +
           " BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
           "WHERE key = 'directory_generation'; END");
  }
}

void to_v12(Connection& c, DbKind kind, std::string_view) {
  if (kind != DbKind::Master) return;
  c.exec(kMasterV12);
  for (const char* table : kGenerationTables) generation_triggers(c, table);
}

// Version 13's IMAP access table (master only).
void v13_imapd(Connection& c, DbKind kind) {
  if (kind == DbKind::Master) c.exec(kMasterV13Imapd);
}


// The mail part of version 13 (the IMAP store).
void v13_mail(Connection& c, DbKind kind, std::string_view schema) {
  c.exec(expand(kMailboxColumnsV13, schema));
  if (kind == DbKind::Master) c.exec(kMasterV13Mail);
}

void to_v13(Connection& c, DbKind kind, std::string_view schema) {
  v13_imapd(c, kind);
  v13_mail(c, kind, schema);
}

void to_v14(Connection& c, DbKind kind, std::string_view) {
  if (kind != DbKind::Master) return;
  c.exec(kMasterV14);
  for (const char* table : kGenerationTablesV14) generation_triggers(c, table);
}

struct Migration {
  int version;  // the version this step produces
  Step step;
};
const Migration kMigrations[] = {
    {10, to_v10},
    {11, to_v11},
    {12, to_v12},
    {13, to_v13},
    {14, to_v14},
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

namespace {

// The column definitions of a CREATE TABLE statement, split at its top-level commas.
std::vector<std::string> column_definitions(std::string_view sql, std::string& head) {
  const std::size_t open = sql.find('(');
  const std::size_t close = sql.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    throw SqlError{Status::internal("unexpected table definition")};
  head = std::string(sql.substr(0, open));
  std::vector<std::string> defs;
  std::string cur;
  int depth = 0;
  char quote = 0;
  for (char ch : sql.substr(open + 1, close - open - 1)) {
    if (quote) {
      if (ch == quote) quote = 0;
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
    } else if (ch == '(') {
      ++depth;
    } else if (ch == ')') {
      --depth;
    } else if (ch == ',' && depth == 0) {
      defs.push_back(cur);
      cur.clear();
      continue;
    }
    cur += ch;
  }
  defs.push_back(cur);
  for (std::string& d : defs) {
    const auto b = d.find_first_not_of(" \t\r\n");
    const auto e = d.find_last_not_of(" \t\r\n");
    d = b == std::string::npos ? "" : d.substr(b, e - b + 1);
  }
  return defs;
}

// Rebuilds an empty table of a new database with `column` as its last column (SQLite's
// table rebuild: new table, copy, drop, rename, indexes and views again). SQLite writes a
// large value with incremental I/O without building the record in memory only when nothing
// follows it in the row (docs/store.md#large-messages); the columns versions 10 and 11 added
// come after mail_data, so a fresh database gets mail_data moved behind them.
void move_column_last(Connection& c, const std::string& table, const std::string& column) {
  std::optional<std::string> sql;
  std::vector<std::string> indexes, views;
  {
    Stmt s = c.prepare("SELECT type, sql FROM main.sqlite_master WHERE sql IS NOT NULL AND "
                       "((type = 'table' AND name = ?1) OR (type = 'index' AND tbl_name = ?1) OR type = 'view')");
    s.bind(1, table);
    while (s.step()) {
      const std::string type = s.text(0);
      if (type == "table") sql = s.text(1);
      else if (type == "index") indexes.push_back(s.text(1));
      else views.push_back(s.text(1));
    }
  }
  if (!sql) throw SqlError{Status::internal("no table " + table)};
  std::string head;
  std::vector<std::string> defs = column_definitions(*sql, head);
  auto it = std::find_if(defs.begin(), defs.end(), [&](const std::string& d) { return d.rfind(column + " ", 0) == 0; });
  if (it == defs.end()) throw SqlError{Status::internal("no column " + column + " in " + table)};
  std::string moved = *it;
  defs.erase(it);
  // Table constraints come after every column.
  auto constraint = std::find_if(defs.begin(), defs.end(), [](const std::string& d) {
    for (const char* k : {"UNIQUE", "PRIMARY", "CHECK", "FOREIGN", "CONSTRAINT"})
      if (d.rfind(k, 0) == 0) return true;
    return false;
  });
  defs.insert(constraint, moved);
  // cmail's "INTEGER PRIMARY KEY ... UNIQUE" makes SQLite keep a second index of the rowid,
  // which is unique by itself: one more index page written for every message. Not in a new file.
  for (std::string& d : defs) {
    if (d.find("INTEGER PRIMARY KEY") == std::string::npos) continue;
    if (auto u = d.rfind(" UNIQUE"); u != std::string::npos && u + 7 == d.size()) d.erase(u);
  }
  std::string columns;
  {
    Stmt s = c.prepare("SELECT name FROM pragma_table_info(?1)");
    s.bind(1, table);
    while (s.step()) columns += (columns.empty() ? "" : ", ") + s.text(0);
  }
  std::string create = "CREATE TABLE new_" + table + " (\n";
  for (std::size_t i = 0; i < defs.size(); ++i) create += "  " + defs[i] + (i + 1 < defs.size() ? ",\n" : "\n");
  create += ")";
  {
    Stmt s = c.prepare("SELECT name FROM main.sqlite_master WHERE type = 'view'");
    std::vector<std::string> names;
    while (s.step()) names.push_back(s.text(0));
    for (const std::string& v : names) c.exec("DROP VIEW \"" + v + "\"");
  }
  c.exec(create);
  c.exec("INSERT INTO new_" + table + " (" + columns + ") SELECT " + columns + " FROM " + table);
  c.exec("DROP TABLE " + table);
  c.exec("ALTER TABLE new_" + table + " RENAME TO " + table);
  for (const std::string& i : indexes) c.exec(i);
  for (const std::string& v : views) c.exec(v);
}

}  // namespace

Status create_schema(Connection& c, DbKind kind) {
  Status st = c.transaction([&] { c.exec(v9_install_sql(kind)); });
  if (!st.ok()) return st;
  st = migrate(c, kind);
  if (!st.ok() || kind != DbKind::Master) return st;
  // A new file (nothing in it yet): the message columns go last. Upgraded files keep their
  // order; they pay one copy of a large message while it is inserted.
  st = guarded([&] { c.exec("PRAGMA foreign_keys = OFF"); });  // a no-op inside a transaction
  if (!st.ok()) return st;
  st = c.transaction([&] {
    move_column_last(c, "mailbox", "mail_data");
    move_column_last(c, "outbox", "mail_data");
    Stmt s = c.prepare("PRAGMA foreign_key_check");
    if (s.step()) throw SqlError{Status::internal("foreign key check failed after the table rebuild")};
  });
  Status on = guarded([&] { c.exec("PRAGMA foreign_keys = ON"); });
  return st.ok() ? on : st;
}

}  // namespace cmail::store::detail
