// Stored mail: delivery into mailboxes and the queue, folders, UIDs, flags, expunge.
#include "store_impl.h"

#include <cmail/mail/fields.h>
#include <cmail/mail/structure.h>
#include <cmail/proto/ascii.h>
#include <cmail/proto/message.h>
#include <cmail/store/spool.h>

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <map>
#include <set>

namespace cmail::store {

using detail::Connection;
using detail::SqlError;
using detail::Stmt;

namespace detail {

namespace {

std::string schema_quoted(std::string_view schema) { return "\"" + std::string(schema) + "\""; }

}  // namespace

Result<std::string> UserDatabases::attach(Connection& c, const std::string& path,
                                          std::uint64_t batch,
                                          const std::function<void(const std::string&)>& log) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string canonical = fs::weakly_canonical(path, ec).string();
  if (ec) canonical = path;
  for (int i = 0; i < kSlots; ++i) {
    if (slots_[i].path == canonical) {
      slots_[i].last_batch = batch;
      return "u" + std::to_string(i);
    }
  }
  // ATTACH would create a missing file; a user database must exist (cmail never created one).
  if (!fs::is_regular_file(canonical, ec))
    return Status::io_error("user database " + path + " does not exist");
  int slot = -1;
  for (int i = 0; i < kSlots && slot < 0; ++i)
    if (slots_[i].path.empty()) slot = i;
  for (int i = 0; i < kSlots && slot < 0; ++i)
    if (slots_[i].last_batch != batch) slot = i;
  if (slot < 0) return std::string();  // every slot serves this batch: commit first
  std::string name = "u" + std::to_string(slot);
  if (!slots_[slot].path.empty()) {
    c.exec("DETACH " + name);
    slots_[slot].path.clear();
  }
  c.prepare("ATTACH DATABASE ?1 AS " + name).bind(1, canonical).run();
  Status st = guarded([&] {
    int v = read_schema_version(c, name);
    if (v == 0)
      throw SqlError{Status::corruption(path + " is not a cmail user database")};
    if (v > kSchemaVersion || v < kOldestUpgradable)
      throw SqlError{Status::unsupported(path + " has unsupported schema version " +
                                         std::to_string(v))};
    c.exec("PRAGMA " + name + ".journal_mode = WAL");
    c.exec("PRAGMA " + name + ".synchronous = FULL");
    if (v < kSchemaVersion) {
      Status m = migrate(c, DbKind::User, name);
      if (!m.ok()) throw SqlError{m};
      if (log) log("upgraded user database " + path + " to schema version " +
                   std::to_string(kSchemaVersion));
    }
  });
  if (!st.ok()) {
    guarded([&] { c.exec("DETACH " + name); }).ok();
    return st;
  }
  slots_[slot] = {canonical, batch};
  return name;
}

std::int64_t insert_folder(Connection& c, std::string_view user, std::string_view name,
                           std::string_view special_use, bool subscribed) {
  // RFC 9051 2.3.1.1: UIDVALIDITY must change whenever a name is reused: take the clock, or one
  // more than any value ever handed out (meta.uidvalidity_last remembers those of deleted
  // folders), whichever is larger.
  Stmt v = c.prepare(
      "SELECT MAX(CAST(strftime('%s', 'now') AS INTEGER), "
      "COALESCE((SELECT MAX(folder_uidvalidity) FROM main.folders), 0) + 1, "
      "COALESCE((SELECT CAST(value AS INTEGER) FROM main.meta WHERE key = 'uidvalidity_last'), 0) + 1)");
  if (!v.step()) throw SqlError{Status::internal("no UIDVALIDITY")};
  const std::int64_t uidvalidity = v.int64(0);
  v.run();
  c.prepare("INSERT OR REPLACE INTO main.meta (key, value) VALUES ('uidvalidity_last', ?1)")
      .bind(1, std::to_string(uidvalidity))
      .run();
  c.prepare("INSERT INTO main.folders (folder_user, folder_name, folder_uidvalidity, folder_subscribed, "
            "folder_special) VALUES (?1, ?2, ?3, ?4, ?5)")
      .bind(1, user)
      .bind(2, name)
      .bind(3, uidvalidity)
      .bind(4, subscribed ? 1 : 0)
      .bind(5, special_use.empty() ? std::optional<std::string>() : std::optional<std::string>(std::string(special_use)))
      .run();
  const std::int64_t id = c.last_insert_rowid();
  if (subscribed)
    c.prepare("INSERT OR IGNORE INTO main.subscriptions (sub_user, sub_name) VALUES (?1, ?2)")
        .bind(1, user)
        .bind(2, name)
        .run();
  return id;
}

std::int64_t ensure_folder_id(Connection& c, std::string_view user, std::string_view name) {
  Stmt find = c.prepare(
      "SELECT folder_id FROM main.folders WHERE folder_user = ?1 AND folder_name = ?2");
  find.bind(1, user).bind(2, name);
  if (find.step()) {
    auto id = find.int64(0);
    find.run();
    return id;
  }
  return insert_folder(c, user, name, "", true);  // subscribed, as folder_subscribed's default
}

// A folder's UIDNEXT and HIGHESTMODSEQ.
std::pair<std::int64_t, std::int64_t> folder_counters(Connection& c, std::int64_t folder_id) {
  Stmt s = c.prepare("SELECT folder_uidnext, folder_highestmodseq FROM main.folders WHERE folder_id = ?1");
  s.bind(1, folder_id);
  if (!s.step()) throw SqlError{Status::internal("folder vanished")};
  std::pair<std::int64_t, std::int64_t> r{s.int64(0), s.int64(1)};
  s.run();
  return r;
}

// A read and a plain UPDATE, not one UPDATE ... RETURNING: SQLite runs RETURNING through a
// trigger program and a temporary table, which costs more than the read and the write together
// (about 28,000 instructions against 12,000 here, docs/performance.md). The writer's transaction
// holds the write lock, so nothing can change the row between the two.
namespace {
// Takes UID `uid` and modseq `modseq + 1` of a folder whose counters were read as {uid, modseq}.
NewMessage take_counters(Connection& c, std::int64_t folder, std::int64_t uid, std::int64_t modseq) {
  c.prepare("UPDATE main.folders SET folder_uidnext = ?2, folder_highestmodseq = ?3 WHERE folder_id = ?1")
      .bind(1, folder)
      .bind(2, uid + 1)
      .bind(3, modseq + 1)
      .run();
  return {folder, uid, modseq + 1};
}
}  // namespace

std::pair<std::int64_t, std::int64_t> allocate_uid(Connection& c, std::int64_t folder_id) {
  auto [uid, modseq] = folder_counters(c, folder_id);
  const NewMessage m = take_counters(c, folder_id, uid, modseq);
  return {m.uid, m.modseq};
}

NewMessage allocate_message(Connection& c, std::string_view user, std::string_view name) {
  Stmt s = c.prepare(
      "SELECT folder_id, folder_uidnext, folder_highestmodseq FROM main.folders "
      "WHERE folder_user = ?1 AND folder_name = ?2");
  s.bind(1, user).bind(2, name);
  if (!s.step()) {
    s.run();
    const std::int64_t folder = ensure_folder_id(c, user, name);
    auto [uid, modseq] = folder_counters(c, folder);
    return take_counters(c, folder, uid, modseq);
  }
  const std::int64_t folder = s.int64(0), uid = s.int64(1), modseq = s.int64(2);
  s.run();
  return take_counters(c, folder, uid, modseq);
}

bool ForeignRowsCache::clean(Connection& c, const std::string& user) {
  Stmt s = c.prepare("PRAGMA main.data_version");
  const std::int64_t version = s.step() ? s.int64(0) : -1;
  s.run();
  if (version != version_ || version < 0) {
    clean_.clear();
    version_ = version;
    return false;
  }
  return clean_.count(user) != 0;
}

bool has_foreign_rows(Connection& c, std::string_view schema, std::string_view user) {
  // One seek on idx_mailbox_user (mail_user, mail_folder).
  Stmt s = c.prepare("SELECT 1 FROM " + schema_quoted(schema) +
                     ".mailbox WHERE mail_user = ?1 AND mail_folder IS NULL LIMIT 1");
  s.bind(1, user);
  bool found = s.step();
  s.run();
  return found;
}

void adopt_foreign_rows(Connection& c, std::string_view user, const std::vector<std::string>& schemas) {
  std::set<std::string> uidls;  // the user's unique-ids in every database given
  bool loaded = false;
  for (const std::string& schema : schemas) {
    if (!has_foreign_rows(c, schema, user)) continue;
    const std::string table = schema_quoted(schema) + ".mailbox";
    if (!loaded) {
      for (const std::string& other : schemas) {
        Stmt u = c.prepare("SELECT mail_uidl FROM " + schema_quoted(other) +
                           ".mailbox WHERE mail_user = ?1 AND mail_uidl IS NOT NULL");
        u.bind(1, user);
        while (u.step()) uidls.insert(u.text(0));
      }
      loaded = true;
    }
    std::vector<std::int64_t> ids;
    {
      Stmt s = c.prepare("SELECT mail_id FROM " + table +
                         " WHERE mail_user = ?1 AND mail_folder IS NULL ORDER BY mail_id");
      s.bind(1, user);
      while (s.step()) ids.push_back(s.int64(0));
    }
    const std::int64_t inbox = ensure_folder_id(c, user, "INBOX");
    for (std::int64_t id : ids) {
      // mail_data may be TEXT or BLOB (both read as bytes) or NULL (an empty message).
      Stmt r = c.prepare("SELECT mail_data, mail_ident, mail_uidl FROM " + table + " WHERE mail_id = ?1");
      r.bind(1, id);
      if (!r.step()) continue;
      const std::string_view data = r.text_view(0);
      const auto size = static_cast<std::int64_t>(data.size());
      const auto wire = static_cast<std::int64_t>(proto::wire_size(data));
      std::optional<std::string> uidl = r.opt_text(2);
      std::optional<std::string> ident = r.opt_text(1);
      r.run();
      // The unique-id: one the writer gave, else mail_ident if no other message of the user
      // has it, else none (POP3 then shows UIDVALIDITY.UID, docs/popd.md#unique-ids-uidl).
      if (!uidl && ident && uidls.insert(*ident).second) uidl = ident;
      auto [uid, modseq] = allocate_uid(c, inbox);
      c.prepare("UPDATE " + table +
                " SET mail_folder = ?1, mail_uid = ?2, mail_modseq = ?3, mail_size = ?4, "
                "mail_wiresize = ?5, mail_uidl = ?6, "
                "mail_internaldate = COALESCE(mail_internaldate, CAST(mail_submission AS INTEGER)), "
                "mail_flags = mail_flags | CASE WHEN mail_read THEN 1 ELSE 0 END, "
                "mail_read = CASE WHEN mail_read OR (mail_flags & 1) THEN 1 ELSE 0 END "
                "WHERE mail_id = ?7")
          .bind(1, inbox)
          .bind(2, uid)
          .bind(3, modseq)
          .bind(4, size)
          .bind(5, wire)
          .bind(6, uidl)
          .bind(7, id)
          .run();
    }
  }
}

}  // namespace detail

Result<std::string> Store::Impl::user_schema(Connection& w, const std::string& user,
                                             std::uint64_t batch) {
  std::optional<std::string> db;
  Status st = detail::guarded([&] {
    Stmt s = w.prepare("SELECT user_database FROM main.users WHERE user_name = ?1");
    s.bind(1, user);
    if (s.step()) db = s.opt_text(0);
    s.run();
  });
  if (!st.ok()) return st;
  if (!db || db->size() <= 1) return std::string("main");
  try {
    return user_databases.attach(w, *db, batch, options.logger);
  } catch (const SqlError& e) {
    return e.status;
  }
}

namespace {

// Bumps a folder's HIGHESTMODSEQ for one change (RFC 7162 3.1) and returns the new value.
std::int64_t next_modseq(Connection& c, std::int64_t folder) {
  const std::int64_t modseq = detail::folder_counters(c, folder).second + 1;  // no RETURNING, as allocate_uid
  c.prepare("UPDATE main.folders SET folder_highestmodseq = ?2 WHERE folder_id = ?1").bind(1, folder).bind(2, modseq).run();
  return modseq;
}

constexpr std::uint64_t kMaxStoredMessage = 1000000000;

// Octets of a delivered message: its start in memory and the spooled rest.
std::uint64_t message_size(const Delivery& d) { return d.data.size() + (d.spool ? d.spool->size() : 0); }

// Binds the message to parameter i: its text, or room for it when it is spooled (then
// write_spooled() fills the row in after the insert).
Stmt& bind_message(Stmt& s, int i, const Delivery& d) {
  return d.spool ? s.bind_zeroblob(i, message_size(d)) : s.bind_static(i, d.data);  // d outlives run()
}

// Copies a spooled message into the row just inserted, a chunk at a time (one chunk in memory).
void write_spooled(Connection& c, const std::string& schema, const char* table, const Delivery& d) {
  if (!d.spool) return;
  constexpr std::size_t kChunk = 256 * 1024;
  detail::Blob blob(c, schema, table, "mail_data", c.last_insert_rowid(), true);
  blob.write(0, d.data);
  std::string chunk;
  for (std::uint64_t off = 0; off < d.spool->size(); off += chunk.size()) {
    Status st = d.spool->read(off, kChunk, chunk);
    if (st.ok() && chunk.empty()) st = Status::io_error("the spool file is shorter than what was written");
    if (!st.ok()) throw SqlError{st};
    blob.write(d.data.size() + off, chunk);
  }
}

// The INSERT of a stored copy, for the master and for an attached user database (the same
// text each time, so that the statement cache holds one of each).
const std::string& insert_sql(const std::string& schema) {
  static const std::string kInto =
      " (mail_user, mail_ident, mail_envelopeto, mail_envelopefrom, mail_submission, mail_submitter, "
      "mail_proto, mail_data, mail_folder, mail_uid, mail_modseq, mail_internaldate, mail_size, "
      "mail_wiresize, mail_structure, mail_flags, mail_keywords, mail_read) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
  static const std::string kMain = "INSERT INTO \"main\".mailbox" + kInto;
  thread_local std::string other;
  if (schema == "main") return kMain;
  other = "INSERT INTO \"" + schema + "\".mailbox" + kInto;
  return other;
}

// What a stored copy carries besides the delivery: its structure (encode_structure()), and for
// an IMAP APPEND its flags, keywords and internal date.
struct StoredExtras {
  std::string structure;
  std::uint32_t flags = 0;
  std::optional<std::string> keywords;
  std::int64_t internal_date = 0;  // 0 = the delivery's time
};

// A LocalCopy's folder "\Junk" (any RFC 6154 special use) is the user's folder with that use,
// whatever its name; without one, the folder named after it ("Junk"), made with that use.
std::string special_folder(Connection& c, const std::string& user, const std::string& folder) {
  if (folder.empty() || folder[0] != '\\') return folder;
  Stmt s = c.prepare("SELECT folder_name FROM main.folders WHERE folder_user = ?1 AND folder_special = ?2 "
                     "ORDER BY folder_id LIMIT 1");
  s.bind(1, user).bind(2, folder);
  if (s.step()) return s.text(0);
  s.run();
  const std::string name = folder.substr(1);
  Stmt exists = c.prepare("SELECT 1 FROM main.folders WHERE folder_user = ?1 AND folder_name = ?2");
  exists.bind(1, user).bind(2, name);
  const bool has = exists.step();
  exists.run();
  if (!has) detail::insert_folder(c, user, name, folder, true);
  return name;
}

detail::NewMessage insert_local(Connection& c, detail::ForeignRowsCache& foreign, const std::string& schema,
                                const Delivery& d, const LocalCopy& copy, std::int64_t now, std::int64_t wsize,
                                const StoredExtras& extras) {
  // Rows other programs wrote for this user come first in UID order, as they came first.
  if (schema == "main") {
    if (!foreign.clean(c, copy.user)) {
      if (detail::has_foreign_rows(c, "main", copy.user)) detail::adopt_foreign_rows(c, copy.user, {"main"});
      else foreign.mark_clean(copy.user);  // not after an adoption: it may yet be rolled back
    }
  } else {
    detail::adopt_foreign_rows(c, copy.user, {"main", schema});
  }
  const detail::NewMessage m = detail::allocate_message(c, copy.user, special_folder(c, copy.user, copy.folder));
  Stmt s = c.prepare(insert_sql(schema));
  // Every value bound without a copy lives in d or copy until run().
  s.bind_static(1, copy.user)
      .bind_static(2, d.ident)
      .bind_static(3, copy.envelope_to)
      .bind_static(4, d.envelope_from ? std::string_view(*d.envelope_from) : std::string_view(""))
      .bind(5, std::to_string(now))
      .bind(6, d.submitter)
      .bind_static(7, d.protocol);
  bind_message(s, 8, d)
      .bind(9, m.folder)
      .bind(10, m.uid)
      .bind(11, m.modseq)
      .bind(12, extras.internal_date ? extras.internal_date : now)
      .bind(13, static_cast<std::int64_t>(message_size(d)))
      .bind(14, wsize);
  if (extras.structure.empty()) s.bind(15, std::nullopt);
  else s.bind_blob(15, extras.structure);
  s.bind(16, static_cast<std::int64_t>(extras.flags))
      .bind(17, extras.keywords)
      .bind(18, (extras.flags & kFlagSeen) ? 1 : 0)
      .run();
  write_spooled(c, schema, "mailbox", d);
  return m;
}

bool is_inbox(std::string_view name) { return name.size() == 5 && proto::ascii_lower(name) == "inbox"; }
// RFC 9051 5.1: INBOX in any case is INBOX.
std::string folder_key(std::string_view name) { return is_inbox(name) ? std::string("INBOX") : std::string(name); }

constexpr std::size_t kAppendChunk = 256 * 1024;

void shift_part(mail::Part& p, std::uint64_t n) {
  p.header_offset += n;
  p.body_offset += n;
  for (mail::Part& child : p.children) shift_part(child, n);
}

// Whether `start` is only header fields (continuations included) that the part tree does not
// read: not Content-*, MIME-Version or an envelope field (RFC 9051 7.5.2). Then the tree of
// start + rest is the tree of rest with its offsets moved and the root's header grown (the
// Received field the SMTP session puts before a spooled message).
bool inert_header_lines(std::string_view start) {
  if (start.size() > 16 * 1024 || start.back() != '\n') return false;
  static const char* const kRead[] = {"mime-version", "date", "subject", "from", "sender", "reply-to",
                                      "to", "cc", "bcc", "in-reply-to", "message-id"};
  bool first = true;
  for (std::size_t pos = 0; pos < start.size();) {
    std::size_t eol = start.find('\n', pos);
    std::string_view line = start.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return false;  // the end of the header
    if (line.front() == ' ' || line.front() == '\t') {
      if (first) return false;
      continue;
    }
    first = false;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const std::string name = proto::ascii_lower(line.substr(0, colon));
    if (name.find_first_of(" \t") != std::string::npos || name.rfind("content-", 0) == 0) return false;
    for (const char* r : kRead)
      if (name == r) return false;
  }
  return true;
}

// The stored structure of a delivered message (mailbox.mail_structure), from what was parsed
// as it arrived: `data` parsed here, a spool's own parse (Spool::structure()) taken over. Only
// when `data` holds more than inert header lines before a spool is the spool read again.
std::string delivery_structure(const Delivery& d) {
  if (!d.spool) return mail::encode_structure(mail::parse_structure(d.data));
  if (d.data.empty()) return mail::encode_structure(d.spool->structure());
  if (inert_header_lines(d.data)) {
    mail::Part root = d.spool->structure();
    shift_part(root, d.data.size());
    root.header_offset = 0;
    root.header_length += d.data.size();
    return mail::encode_structure(root);
  }
  mail::StructureParser parser;
  parser.feed(d.data);
  std::string chunk;
  for (std::uint64_t off = 0; off < d.spool->size(); off += chunk.size()) {
    if (!d.spool->read(off, 256 * 1024, chunk).ok() || chunk.empty()) return {};  // none: parsed when read
    parser.feed(chunk);
  }
  return mail::encode_structure(parser.finish());
}

}  // namespace

void Store::deliver(Delivery delivery, Done done) {
  if (!impl_->writer) {
    if (done) done(Status::read_only(impl_->path + " is open read-only"));
    return;
  }
  struct State {
    Delivery d;
    std::vector<std::string> schemas;  // per local copy
    std::int64_t wire_size = 0;        // computed here, on the caller's thread, not the writer's
    StoredExtras extras;               // the structure, likewise
  };
  const Delivery& d = delivery;
  if (d.spool && !d.data.empty() && d.data.back() != '\n') {
    if (done) done(Status::invalid_argument("a spooled message's start must end with a line end"));
    return;
  }
  if (message_size(d) > kMaxStoredMessage) {  // SQLite's largest value (SQLITE_MAX_LENGTH)
    if (done) done(Status::invalid_argument("message of " + std::to_string(message_size(d)) + " octets is too large to store"));
    return;
  }
  auto state = std::make_shared<State>(State{std::move(delivery), {}, 0, {}});
  state->extras.structure = delivery_structure(state->d);
  // data ends with a line end, so the spooled rest counts as if it stood alone.
  state->wire_size = static_cast<std::int64_t>(proto::wire_size(state->d.data) +
                                               (state->d.spool ? state->d.spool->wire_size().total() : 0));
  Impl* impl = impl_.get();
  detail::Job job;
  job.prepare = [impl, state](Connection& w, std::uint64_t batch) {
    state->schemas.clear();
    for (const LocalCopy& copy : state->d.local) {
      auto schema = impl->user_schema(w, copy.user, batch);
      if (schema && schema->empty()) return false;  // no free slot in this batch
      if (!schema) {
        // cmail's rule (docs/compatibility.md#database-user-databases): an unusable user database
        // means the master mailbox.
        impl->log("user database of " + copy.user + " unusable, storing in the master: " +
                  schema.error().to_string());
        state->schemas.push_back("main");
      } else {
        state->schemas.push_back(*schema);
      }
    }
    return true;
  };
  job.apply = [state, impl](Connection& c) {
    const Delivery& d = state->d;
    const std::int64_t now = d.received_at ? d.received_at : detail::unix_now();
    for (std::size_t i = 0; i < d.local.size(); ++i) {
      const std::string& schema = state->schemas[i];
      if (schema == "main") {
        insert_local(c, impl->foreign_rows, schema, d, d.local[i], now, state->wire_size, state->extras);
        continue;
      }
      c.exec("SAVEPOINT userdb");
      Status st = detail::guarded(
          [&] { insert_local(c, impl->foreign_rows, schema, d, d.local[i], now, state->wire_size, state->extras); });
      if (st.ok()) {
        c.exec("RELEASE userdb");
      } else {
        c.exec("ROLLBACK TO userdb");
        c.exec("RELEASE userdb");
        // Retry once in the master (docs/compatibility.md#database-user-databases).
        insert_local(c, impl->foreign_rows, "main", d, d.local[i], now, state->wire_size, state->extras);
      }
    }
    if (!d.local.empty()) impl->note_mail_change();
    for (const QueuedRecipient& q : d.queued) {
      Stmt s = c.prepare(
          "INSERT INTO main.outbox (mail_remote, mail_envelopefrom, mail_envelopeto, "
          "mail_submission, mail_submitter, mail_data, mail_queueid, mail_next_attempt, "
          "mail_dsn_ret, mail_dsn_envid, mail_dsn_notify, mail_dsn_orcpt, mail_requiretls) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?12)");
      s.bind(1, q.remote)
          .bind(2, d.envelope_from)
          .bind(3, q.envelope_to)
          .bind(4, now)
          .bind(5, d.submitter);
      bind_message(s, 6, d)
          .bind(7, d.ident)
          .bind(8, d.dsn_ret)
          .bind(9, d.dsn_envid)
          .bind(10, q.dsn.notify)
          .bind(11, q.dsn.orcpt)
          .bind(12, static_cast<std::int64_t>(d.tls_required))
          .run();
      write_spooled(c, "main", "outbox", d);
    }
    for (std::int64_t id : d.replaces) {
      int n = c.prepare("DELETE FROM main.outbox WHERE mail_id = ?1 AND mail_lease_owner = ?2")
                  .bind(1, id)
                  .bind(2, d.replaces_owner)
                  .run();
      if (n == 0) throw SqlError{Status::not_found("queue entry " + std::to_string(id) + " is gone or not leased to " +
                                                   d.replaces_owner)};
    }
    if (!d.queued.empty()) impl->note_queue_change();
  };
  job.done = std::move(done);
  job.rerunnable = true;  // state is only read (the spool file too)
  impl_->writer->submit(std::move(job));
}

Status Store::deliver_sync(Delivery delivery) {
  std::promise<Status> p;
  auto f = p.get_future();
  deliver(std::move(delivery), [&p](Status st) { p.set_value(std::move(st)); });
  return f.get();
}

namespace {

constexpr const char* kMessageColumns =
    "mail_id, mail_user, mail_folder, mail_uid, mail_modseq, mail_flags, "
    "COALESCE(mail_keywords, ''), mail_internaldate, mail_size, mail_ident, mail_envelopefrom, "
    "mail_envelopeto, COALESCE(mail_wiresize, -1), mail_uidl";

MessageInfo read_info(const Stmt& s, const std::string& database) {
  MessageInfo m;
  m.ref = {database, s.int64(0)};
  m.user = s.text(1);
  m.folder = s.int64(2);
  m.uid = static_cast<std::uint32_t>(s.int64(3));
  m.modseq = static_cast<std::uint64_t>(s.int64(4));
  m.flags = static_cast<std::uint32_t>(s.int64(5));
  m.keywords = s.text(6);
  m.internal_date = s.int64(7);
  m.size = s.int64(8);
  m.ident = s.opt_text(9);
  m.envelope_from = s.text(10);
  m.envelope_to = s.text(11);
  m.wire_size = s.int64(12);
  m.legacy_uidl = s.opt_text(13);
  return m;
}

Folder read_folder(const Stmt& s) {
  Folder f;
  f.id = s.int64(0);
  f.user = s.text(1);
  f.name = s.text(2);
  f.uidvalidity = static_cast<std::uint32_t>(s.int64(3));
  f.uidnext = static_cast<std::uint32_t>(s.int64(4));
  f.highest_modseq = static_cast<std::uint64_t>(s.int64(5));
  f.subscribed = s.int64(6) != 0;
  f.special_use = s.text(7);
  return f;
}

// A folder is subscribed when its name is in subscriptions (RFC 9051 6.3.7: names, not folders).
constexpr const char* kFolderColumns =
    "folder_id, folder_user, folder_name, folder_uidvalidity, folder_uidnext, "
    "folder_highestmodseq, EXISTS (SELECT 1 FROM subscriptions WHERE sub_user = folder_user AND "
    "sub_name = folder_name), COALESCE(folder_special, '')";

// Whether message `id` has octets (mail_data is not NULL); NotFound (thrown) when the row is
// gone. A NULL mail_data is an empty message, which has no blob to open.
bool has_data(Connection& c, std::int64_t id) {
  Stmt s = c.prepare("SELECT typeof(mail_data) FROM mailbox WHERE mail_id = ?1");  // cached
  s.bind(1, id);
  if (!s.step()) throw SqlError{Status::not_found("no such message")};
  const bool data = s.text(0) != "null";
  s.run();
  return data;
}

// A stored message read in chunks straight from its row (sqlite3_blob_read): what
// Mailboxes::open_message() returns.
class BlobSource final : public proto::Source {
 public:
  BlobSource() = default;  // a NULL mail_data: an empty message
  BlobSource(std::unique_ptr<Connection> conn, std::int64_t id)
      : conn_(std::move(conn)), blob_(std::make_unique<detail::Blob>(*conn_, "main", "mailbox", "mail_data", id, false)),
        size_(blob_->size()) {}
  ~BlobSource() override {
    blob_.reset();  // before its connection
  }

  std::optional<std::uint64_t> size() const override { return size_; }

  Status read(std::size_t max, std::string& out) override {
    if (!blob_ || offset_ >= size_) return Status();
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(max, size_ - offset_));
    Status st = detail::guarded([&] { blob_->read(offset_, n, chunk_); });
    if (!st.ok()) return st;
    out.append(chunk_);
    offset_ += n;
    return Status();
  }

 private:
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<detail::Blob> blob_;
  std::uint64_t size_ = 0;
  std::uint64_t offset_ = 0;
  std::string chunk_;
};

class MailboxesImpl final : public Mailboxes {
 public:
  explicit MailboxesImpl(Store::Impl& impl) : impl_(impl) {}

  Result<Folder> ensure_folder(std::string_view user, std::string_view name) override {
    std::string u(user), n(name);
    Status st = impl_.write([&](Connection& c) {
      Stmt s = c.prepare("SELECT 1 FROM main.users WHERE user_name = ?1");
      s.bind(1, u);
      bool exists = s.step();
      s.run();
      if (!exists) throw SqlError{Status::not_found("no such user '" + u + "'")};
      detail::ensure_folder_id(c, u, n);
    });
    if (!st.ok()) return st;
    auto f = find_folder(user, name);
    if (!f) return f.error();
    if (!*f) return Status::internal("folder vanished");
    return **f;
  }

  Result<std::optional<Folder>> find_folder(std::string_view user, std::string_view name) override {
    std::optional<Folder> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(std::string("SELECT ") + kFolderColumns +
                         " FROM folders WHERE folder_user = ?1 AND folder_name = ?2");
      s.bind(1, user).bind(2, name);
      if (s.step()) out = read_folder(s);
      s.run();
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<Folder>> list_folders(std::string_view user) override {
    std::vector<Folder> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(std::string("SELECT ") + kFolderColumns +
                         " FROM folders WHERE folder_user = ?1 ORDER BY folder_name");
      s.bind(1, user);
      while (s.step()) out.push_back(read_folder(s));
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<MessageInfo>> list_messages(std::string_view user,
                                                 std::string_view folder) override {
    return select_messages(user, folder, std::nullopt);
  }

  Result<std::vector<MessageInfo>> list_messages(std::string_view user, std::string_view folder,
                                                 std::uint32_t first_uid, std::uint32_t last_uid) override {
    if (first_uid > last_uid) return std::vector<MessageInfo>{};
    return select_messages(user, folder, std::make_pair(first_uid, last_uid));
  }

  // The messages of a folder in UID order, all or those with a UID in `range` (inclusive),
  // through the unique index on (mail_folder, mail_uid).
  Result<std::vector<MessageInfo>> select_messages(std::string_view user, std::string_view folder,
                                                   std::optional<std::pair<std::uint32_t, std::uint32_t>> range) {
    const std::string u(user);
    auto reader = user_reader(u);
    if (!reader) return reader.error();
    std::unique_ptr<Connection>& udb = reader->conn;
    const std::string* db = &reader->path;
    Status st;
    std::vector<MessageInfo> out;
    std::int64_t folder_id = -1;
    const std::string where = range ? "mail_folder = ?1 AND mail_user = ?2 AND mail_uid BETWEEN ?3 AND ?4"
                                    : "mail_folder = ?1 AND mail_user = ?2";
    auto bind = [&](Stmt& s) {
      s.bind(1, folder_id).bind(2, user);
      if (range) s.bind(3, static_cast<std::int64_t>(range->first)).bind(4, static_cast<std::int64_t>(range->second));
    };
    st = impl_.read([&](Connection& c) {
      Stmt f = c.prepare("SELECT folder_id FROM folders WHERE folder_user = ?1 AND folder_name = ?2");
      f.bind(1, user).bind(2, folder);
      if (f.step()) folder_id = f.int64(0);
      f.run();
      if (folder_id < 0) return;
      Stmt s = c.prepare(std::string("SELECT ") + kMessageColumns + " FROM mailbox WHERE " + where);
      bind(s);
      while (s.step()) out.push_back(read_info(s, ""));
    });
    if (!st.ok()) return st;
    if (udb && folder_id >= 0) {
      st = detail::guarded([&] {
        Stmt s = udb->prepare(std::string("SELECT ") + kMessageColumns + " FROM mailbox WHERE " + where);
        bind(s);
        while (s.step()) out.push_back(read_info(s, *db));
      });
      if (!st.ok()) return st;
    }
    std::sort(out.begin(), out.end(),
              [](const MessageInfo& a, const MessageInfo& b) { return a.uid < b.uid; });
    return out;
  }

  Result<std::string> read_message(const MessageRef& ref) override {
    auto one = read_messages({ref});
    if (!one) return one.error();
    return std::move(one->front());
  }

  Result<std::vector<std::string>> read_messages(const std::vector<MessageRef>& refs) override {
    std::vector<std::string> out(refs.size());
    Status st = read_by_database(refs, [&](Connection& c, const std::vector<std::size_t>& indexes) {
      for (std::size_t i : indexes) {
        Stmt s = c.prepare("SELECT mail_data FROM mailbox WHERE mail_id = ?1");  // cached
        s.bind(1, refs[i].id);
        if (!s.step()) throw SqlError{Status::not_found("no such message")};
        out[i] = s.text(0);
        s.run();
      }
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<Pieces>> read_message_ranges(const std::vector<MessageRef>& refs,
                                                  const std::vector<OctetRanges>& ranges) override {
    std::vector<Pieces> out(refs.size());
    Status st = read_by_database(refs, [&](Connection& c, const std::vector<std::size_t>& indexes) {
      for (std::size_t i : indexes) {
        if (!has_data(c, refs[i].id)) continue;  // no octets: size 0, every piece empty
        detail::Blob blob(c, "main", "mailbox", "mail_data", refs[i].id, false);
        out[i].size = blob.size();
        for (const auto& [offset, length] : ranges[i]) {
          std::string piece;
          if (offset < out[i].size)
            blob.read(offset, static_cast<std::size_t>(std::min<std::uint64_t>(length, out[i].size - offset)), piece);
          out[i].pieces.emplace_back(offset, std::move(piece));
        }
      }
    });
    if (!st.ok()) return st;
    return out;
  }

  // Runs fn with the indexes of `refs` in each database they name (the master's pooled read
  // connection, or the user database opened read-only), in one read transaction per database:
  // a batch costs one transaction and its locks, not one per message.
  Status read_by_database(const std::vector<MessageRef>& refs,
                          const std::function<void(Connection&, const std::vector<std::size_t>&)>& fn) {
    std::map<std::string, std::vector<std::size_t>> by_db;
    for (std::size_t i = 0; i < refs.size(); ++i) by_db[refs[i].database].push_back(i);
    for (const auto& [database, indexes] : by_db) {
      Status st;
      if (database.empty()) {
        st = impl_.read([&, &indexes = indexes](Connection& c) { fn(c, indexes); });
      } else {
        auto conn = Connection::open(database, Connection::Mode::ReadOnly, impl_.options.busy_timeout_ms);
        if (!conn) return conn.error();
        st = detail::guarded([&, &indexes = indexes] { fn(**conn, indexes); });
      }
      if (!st.ok()) return st;
    }
    return Status();
  }

  Result<std::unique_ptr<proto::Source>> open_message(const MessageRef& ref) override {
    // A connection of its own: the blob handle keeps one read transaction (one snapshot) open
    // for as long as the message is being read, and the read pool is not tied up by it.
    auto conn = Connection::open(ref.database.empty() ? impl_.path : ref.database, Connection::Mode::ReadOnly,
                                 impl_.options.busy_timeout_ms);
    if (!conn) return conn.error();
    std::unique_ptr<proto::Source> source;
    Status st = detail::guarded([&] {
      if (!has_data(**conn, ref.id)) source = std::make_unique<BlobSource>();
      else source = std::make_unique<BlobSource>(std::move(*conn), ref.id);
    });
    if (!st.ok()) return st;
    return source;
  }

  Result<std::uint64_t> set_flags(const MessageRef& ref, std::uint32_t flags,
                                  std::string_view keywords) override {
    std::uint64_t modseq = 0;
    std::string kw(keywords);
    auto schema = std::make_shared<std::string>("main");
    Status st = impl_.write(
        [&](Connection& c) {
          Stmt s = c.prepare("SELECT mail_folder FROM \"" + *schema +
                             "\".mailbox WHERE mail_id = ?1");
          s.bind(1, ref.id);
          if (!s.step()) throw SqlError{Status::not_found("no such message")};
          std::int64_t folder = s.int64(0);
          s.run();
          modseq = static_cast<std::uint64_t>(next_modseq(c, folder));
          c.prepare("UPDATE \"" + *schema +
                    "\".mailbox SET mail_flags = ?1, mail_keywords = ?2, mail_read = ?3, "
                    "mail_modseq = ?4 WHERE mail_id = ?5")
              .bind(1, static_cast<std::int64_t>(flags))
              .bind(2, kw.empty() ? std::optional<std::string>() : std::optional<std::string>(kw))
              .bind(3, (flags & kFlagSeen) ? 1 : 0)
              .bind(4, static_cast<std::int64_t>(modseq))
              .bind(5, ref.id)
              .run();
          impl_.note_mail_change();
        },
        schema_resolver(ref, schema));
    if (!st.ok()) return st;
    return modseq;
  }

  Status expunge(std::string_view user, const std::vector<MessageRef>& refs) override {
    std::string u(user);
    // Group by database; each group is one job, all in one write so that they commit together.
    auto schemas = std::make_shared<std::map<std::string, std::string>>();
    return impl_.write(
        [&](Connection& c) {
          for (const MessageRef& ref : refs) {
            const std::string& schema = (*schemas)[ref.database];
            Stmt s = c.prepare("SELECT mail_folder, mail_uid FROM \"" + schema +
                               "\".mailbox WHERE mail_id = ?1 AND mail_user = ?2");
            s.bind(1, ref.id).bind(2, u);
            if (!s.step()) continue;  // already gone (another session expunged it)
            std::int64_t folder = s.int64(0);
            std::optional<std::int64_t> uid = s.opt_int64(1);
            s.run();
            if (uid) {
              c.prepare("INSERT OR REPLACE INTO main.expunged (exp_folder, exp_uid, exp_modseq) "
                        "VALUES (?1, ?2, ?3)")
                  .bind(1, folder)
                  .bind(2, *uid)
                  .bind(3, next_modseq(c, folder))
                  .run();
            }
            c.prepare("DELETE FROM \"" + schema + "\".mailbox WHERE mail_id = ?1")
                .bind(1, ref.id)
                .run();
            impl_.note_mail_change();
          }
        },
        [this, schemas, refs](Connection& w, std::uint64_t batch) {
          schemas->clear();
          (*schemas)[""] = "main";
          for (const MessageRef& ref : refs) {
            if (schemas->count(ref.database)) continue;
            auto s = impl_.user_databases.attach(w, ref.database, batch, impl_.options.logger);
            if (!s) throw SqlError{s.error()};
            if (s->empty()) return false;
            (*schemas)[ref.database] = *s;
          }
          return true;
        });
  }

  // --- IMAP ---

  Result<Folder> create_folder(std::string_view user, std::string_view name, std::string_view special_use) override {
    if (name.empty()) return Status::invalid_argument("a folder needs a name");
    if (is_inbox(name)) return Status::already_exists("INBOX always exists");
    const std::string u(user), n(name), special(special_use);
    Status st = impl_.write([&](Connection& c) {
      require_user(c, u);
      if (find_folder_row(c, u, n)) throw SqlError{Status::already_exists("folder '" + n + "' exists")};
      detail::insert_folder(c, u, n, special, false);
    });
    if (!st.ok()) return st;
    return folder_state(user, name);
  }

  Status delete_folder(std::string_view user, std::string_view name) override {
    // RFC 9051 6.3.5: deleting INBOX is an error.
    if (is_inbox(name)) return Status::invalid_argument("INBOX cannot be deleted");
    const std::string u(user), n(name);
    auto dbs = std::make_shared<UserSchemas>();
    return impl_.write(
        [&](Connection& c) {
          dbs->require();
          auto f = find_folder_row(c, u, n);
          if (!f) throw SqlError{Status::not_found("no folder '" + n + "'")};
          for (const std::string& schema : dbs->schemas)
            c.prepare("DELETE FROM \"" + schema + "\".mailbox WHERE mail_folder = ?1").bind(1, f->id).run();
          c.prepare("DELETE FROM main.folders WHERE folder_id = ?1").bind(1, f->id).run();  // and its expunge log
          impl_.note_mail_change();
        },
        user_resolver(u, dbs));
  }

  Status rename_folder(std::string_view user, std::string_view from, std::string_view to) override {
    if (to.empty()) return Status::invalid_argument("a folder needs a name");
    if (is_inbox(to)) return Status::already_exists("INBOX exists");
    const std::string u(user), src = is_inbox(from) ? std::string("INBOX") : std::string(from), dst(to);
    if (dst.size() > src.size() && dst.compare(0, src.size() + 1, src + "/") == 0 && src != "INBOX")
      return Status::invalid_argument("a folder cannot be renamed into itself");
    auto dbs = std::make_shared<UserSchemas>();
    return impl_.write(
        [&](Connection& c) {
          if (find_folder_row(c, u, dst)) throw SqlError{Status::already_exists("folder '" + dst + "' exists")};
          if (src == "INBOX") {
            // RFC 9051 6.3.6: renaming INBOX moves all its messages into a new folder with the
            // new name and leaves INBOX empty; its inferiors are not renamed.
            dbs->require();
            require_user(c, u);
            const std::int64_t inbox = detail::ensure_folder_id(c, u, "INBOX");
            const std::int64_t target = detail::insert_folder(c, u, dst, "", false);
            std::vector<Row> rows;
            for (const std::string& schema : dbs->schemas) {
              Stmt s = c.prepare("SELECT mail_id, mail_uid FROM \"" + schema +
                                 "\".mailbox WHERE mail_folder = ?1 ORDER BY mail_uid");
              s.bind(1, inbox);
              while (s.step()) rows.push_back({schema, s.int64(0), static_cast<std::uint32_t>(s.int64(1)), 0, 0, {}});
            }
            std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.uid < b.uid; });
            for (const Row& r : rows) {
              auto [uid, modseq] = detail::allocate_uid(c, target);
              c.prepare("UPDATE \"" + r.schema +
                        "\".mailbox SET mail_folder = ?1, mail_uid = ?2, mail_modseq = ?3 WHERE mail_id = ?4")
                  .bind(1, target)
                  .bind(2, uid)
                  .bind(3, modseq)
                  .bind(4, r.id)
                  .run();
              log_expunged(c, inbox, r.uid);
            }
            impl_.note_mail_change();
            return;
          }
          auto f = find_folder_row(c, u, src);
          if (!f) throw SqlError{Status::not_found("no folder '" + src + "'")};
          // The folder and its inferiors ("from/..."), keeping UIDs and UIDVALIDITY.
          std::vector<std::pair<std::int64_t, std::string>> moving;
          {
            Stmt s = c.prepare(
                "SELECT folder_id, folder_name FROM main.folders WHERE folder_user = ?1 AND "
                "(folder_name = ?2 OR substr(folder_name, 1, length(?2) + 1) = ?2 || '/')");
            s.bind(1, u).bind(2, src);
            while (s.step()) moving.emplace_back(s.int64(0), s.text(1));
          }
          for (auto& [id, name] : moving) {
            const std::string renamed = dst + name.substr(src.size());
            if (find_folder_row(c, u, renamed))
              throw SqlError{Status::already_exists("folder '" + renamed + "' exists")};
            c.prepare("UPDATE main.folders SET folder_name = ?1 WHERE folder_id = ?2").bind(1, renamed).bind(2, id).run();
          }
          impl_.note_mail_change();
        },
        src == "INBOX" ? user_resolver(u, dbs) : nullptr);
  }

  Status set_subscribed(std::string_view user, std::string_view name, bool subscribed) override {
    const std::string u(user), n = is_inbox(name) ? std::string("INBOX") : std::string(name);
    if (n.empty()) return Status::invalid_argument("an empty name cannot be subscribed");
    return impl_.write([&](Connection& c) {
      require_user(c, u);
      if (subscribed)
        c.prepare("INSERT OR IGNORE INTO main.subscriptions (sub_user, sub_name) VALUES (?1, ?2)").bind(1, u).bind(2, n).run();
      else
        c.prepare("DELETE FROM main.subscriptions WHERE sub_user = ?1 AND sub_name = ?2").bind(1, u).bind(2, n).run();
      // cmail's own column follows, for programs that read it.
      c.prepare("UPDATE main.folders SET folder_subscribed = ?3 WHERE folder_user = ?1 AND folder_name = ?2")
          .bind(1, u)
          .bind(2, n)
          .bind(3, subscribed ? 1 : 0)
          .run();
    });
  }

  Result<std::vector<std::string>> subscriptions(std::string_view user) override {
    std::vector<std::string> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT sub_name FROM subscriptions WHERE sub_user = ?1 ORDER BY sub_name");
      s.bind(1, user);
      while (s.step()) out.push_back(s.text(0));
    }, true);
    if (!st.ok()) return st;
    return out;
  }

  Status ensure_special_folders(std::string_view user) override {
    // RFC 6154 2: the special-use attributes, with the names clients expect.
    static const std::pair<const char*, const char*> kSpecial[] = {
        {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"}, {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"}};
    const std::string u(user);
    auto missing = [&](Connection& c) {
      std::set<std::string> uses;
      Stmt s = c.prepare("SELECT folder_special FROM main.folders WHERE folder_user = ?1 AND folder_special IS NOT NULL");
      s.bind(1, u);
      while (s.step()) uses.insert(s.text(0));
      std::vector<std::pair<std::string, std::string>> out;
      for (auto& [name, use] : kSpecial)
        if (!uses.count(use)) out.emplace_back(name, use);
      return out;
    };
    bool complete = false;
    Status st = impl_.read([&](Connection& c) { complete = missing(c).empty(); }, true);
    if (!st.ok() || complete) return st;
    return impl_.write([&](Connection& c) {
      require_user(c, u);
      for (auto& [name, use] : missing(c)) {
        if (auto f = find_folder_row(c, u, name)) {
          // A folder of that name without the attribute: give it the attribute.
          c.prepare("UPDATE main.folders SET folder_special = ?1 WHERE folder_id = ?2 AND folder_special IS NULL")
              .bind(1, use)
              .bind(2, f->id)
              .run();
        } else {
          detail::insert_folder(c, u, name, use, true);
        }
      }
    });
  }

  Result<Folder> folder_state(std::string_view user, std::string_view name) override {
    auto f = find_folder(user, is_inbox(name) ? std::string_view("INBOX") : name);
    if (!f) return f.error();
    if (!*f) return Status::not_found("no folder '" + std::string(name) + "'");
    return **f;
  }

  Result<Appended> append(std::string_view user, std::string_view folder, proto::Source& message,
                          std::uint32_t flags, std::string_view keywords, std::int64_t internal_date) override {
    Delivery d;
    std::shared_ptr<Spool> spool;
    std::string chunk;
    for (;;) {
      chunk.clear();
      if (Status st = message.read(kAppendChunk, chunk); !st.ok()) return st;
      if (chunk.empty()) break;
      if (!spool && d.data.size() + chunk.size() <= kAppendChunk) {
        d.data += chunk;
        continue;
      }
      if (!spool) {
        // Too large to hold: the rest goes to a spool file, and so does what came so far.
        auto created = Spool::create(std::filesystem::path(impl_.path).parent_path().string());
        if (!created) return created.error();
        spool = std::move(*created);
        if (Status st = spool->append(d.data); !st.ok()) return st;
        d.data.clear();
        d.data.shrink_to_fit();
      }
      if (spool->size() + chunk.size() > kMaxStoredMessage)
        return Status::invalid_argument("message too large to store");
      if (Status st = spool->append(chunk); !st.ok()) return st;
    }
    d.spool = std::move(spool);
    return store_appended(std::move(d), user, folder, flags, keywords, internal_date);
  }

  Result<Appended> append(std::string_view user, std::string_view folder, std::string_view message,
                          std::uint32_t flags, std::string_view keywords, std::int64_t internal_date) override {
    Delivery d;
    d.data = std::string(message);
    return store_appended(std::move(d), user, folder, flags, keywords, internal_date);
  }

  Result<Copied> copy(std::string_view user, std::string_view from, const std::vector<std::uint32_t>& uids,
                      std::string_view to) override {
    return copy_or_move(user, from, uids, to, false);
  }

  Result<Copied> move(std::string_view user, std::string_view from, const std::vector<std::uint32_t>& uids,
                      std::string_view to) override {
    return copy_or_move(user, from, uids, to, true);
  }

  Result<FlagUpdate> update_flags(std::string_view user, std::string_view folder, const std::vector<std::uint32_t>& uids,
                                  FlagOp op, std::uint32_t flags, std::vector<std::string> keywords,
                                  std::optional<std::uint64_t> unchanged_since) override {
    const std::string u(user), n = folder_key(folder);
    auto dbs = std::make_shared<UserSchemas>();
    FlagUpdate out;
    Status st = impl_.write(
        [&](Connection& c) {
          out = {};
          dbs->require();
          auto f = find_folder_row(c, u, n);
          if (!f) throw SqlError{Status::not_found("no folder '" + n + "'")};
          for (const Row& r : rows_by_uid(c, dbs->schemas, f->id, uids)) {
            // RFC 7162 3.1.3: a message changed since UNCHANGEDSINCE is not stored to.
            if (unchanged_since && static_cast<std::uint64_t>(r.modseq) > *unchanged_since) {
              out.modified.push_back(r.uid);
              continue;
            }
            const std::uint32_t new_flags =
                op == FlagOp::Add ? (r.flags | flags) : op == FlagOp::Remove ? (r.flags & ~flags) : flags;
            const std::string new_keywords = apply_keywords(r.keywords, op, keywords);
            // RFC 7162 3.1: only a change of metadata takes a new modseq.
            if (new_flags == r.flags && new_keywords == r.keywords) continue;
            const std::int64_t modseq = next_modseq(c, f->id);
            c.prepare("UPDATE \"" + r.schema +
                      "\".mailbox SET mail_flags = ?1, mail_keywords = ?2, mail_read = ?3, mail_modseq = ?4 "
                      "WHERE mail_id = ?5")
                .bind(1, static_cast<std::int64_t>(new_flags))
                .bind(2, new_keywords.empty() ? std::optional<std::string>() : std::optional<std::string>(new_keywords))
                .bind(3, (new_flags & kFlagSeen) ? 1 : 0)
                .bind(4, modseq)
                .bind(5, r.id)
                .run();
            out.changed.push_back({r.uid, static_cast<std::uint64_t>(modseq), new_flags, new_keywords});
          }
          if (!out.changed.empty()) impl_.note_mail_change();
        },
        user_resolver(u, dbs));
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<std::uint32_t>> expunge_uids(std::string_view user, std::string_view folder,
                                                  const std::vector<std::uint32_t>& uids) override {
    const std::string u(user), n = folder_key(folder);
    auto dbs = std::make_shared<UserSchemas>();
    std::vector<std::uint32_t> out;
    Status st = impl_.write(
        [&](Connection& c) {
          out.clear();
          dbs->require();
          auto f = find_folder_row(c, u, n);
          if (!f) throw SqlError{Status::not_found("no folder '" + n + "'")};
          for (const Row& r : rows_by_uid(c, dbs->schemas, f->id, uids)) {
            log_expunged(c, f->id, r.uid);
            c.prepare("DELETE FROM \"" + r.schema + "\".mailbox WHERE mail_id = ?1").bind(1, r.id).run();
            out.push_back(r.uid);
          }
          if (!out.empty()) impl_.note_mail_change();
        },
        user_resolver(u, dbs));
    if (!st.ok()) return st;
    return out;
  }

  Result<Changes> changes_since(std::string_view user, std::string_view folder, std::uint64_t modseq) override {
    const std::string u(user), n = folder_key(folder);
    auto udb = user_reader(u);
    if (!udb) return udb.error();
    Changes out;
    bool found = false;
    const std::string sql = std::string("SELECT ") + kMessageColumns +
                            " FROM mailbox WHERE mail_folder = ?1 AND mail_modseq > ?2";  // idx_mailbox_modseq
    Status st = impl_.read([&](Connection& c) {
      Stmt f = c.prepare(std::string("SELECT ") + kFolderColumns + " FROM folders WHERE folder_user = ?1 AND folder_name = ?2");
      f.bind(1, u).bind(2, n);
      if (f.step()) {
        out.folder = read_folder(f);
        found = true;
      }
      f.run();
      if (!found) return;
      Stmt s = c.prepare(sql);
      s.bind(1, out.folder.id).bind(2, static_cast<std::int64_t>(modseq));
      while (s.step()) out.messages.push_back(read_info(s, ""));
      Stmt e = c.prepare("SELECT exp_uid FROM expunged WHERE exp_folder = ?1 AND exp_modseq > ?2 ORDER BY exp_uid");
      e.bind(1, out.folder.id).bind(2, static_cast<std::int64_t>(modseq));
      while (e.step()) out.expunged.push_back(static_cast<std::uint32_t>(e.int64(0)));
    });
    if (!st.ok()) return st;
    if (!found) return Status::not_found("no folder '" + n + "'");
    if (udb->conn) {
      st = detail::guarded([&] {
        Stmt s = udb->conn->prepare(sql);
        s.bind(1, out.folder.id).bind(2, static_cast<std::int64_t>(modseq));
        while (s.step()) out.messages.push_back(read_info(s, udb->path));
      });
      if (!st.ok()) return st;
    }
    std::sort(out.messages.begin(), out.messages.end(),
              [](const MessageInfo& a, const MessageInfo& b) { return a.uid < b.uid; });
    return out;
  }

  Result<std::vector<mail::Part>> read_structures(const std::vector<MessageRef>& refs) override {
    std::vector<std::optional<std::string>> stored(refs.size());
    Status st = read_by_database(refs, [&](Connection& c, const std::vector<std::size_t>& indexes) {
      for (std::size_t i : indexes) {
        Stmt s = c.prepare("SELECT mail_structure FROM mailbox WHERE mail_id = ?1");  // cached
        s.bind(1, refs[i].id);
        if (!s.step()) throw SqlError{Status::not_found("no such message")};
        if (!s.is_null(0)) stored[i] = s.text(0);
        s.run();
      }
    });
    if (!st.ok()) return st;
    std::vector<mail::Part> out;
    out.reserve(refs.size());
    for (std::size_t i = 0; i < refs.size(); ++i) {
      if (stored[i]) {
        if (auto part = mail::decode_structure(*stored[i])) {
          out.push_back(std::move(*part));
          continue;
        }
      }
      auto part = read_structure(refs[i]);  // parsed and kept, one at a time (older rows)
      if (!part) return part.error();
      out.push_back(std::move(*part));
    }
    return out;
  }

  Result<mail::Part> read_structure(const MessageRef& ref) override {
    std::optional<std::string> stored;
    bool exists = false;
    auto body = [&](Connection& c) {
      Stmt s = c.prepare("SELECT mail_structure FROM mailbox WHERE mail_id = ?1");
      s.bind(1, ref.id);
      if (s.step()) {
        exists = true;
        if (!s.is_null(0)) stored = s.text(0);
      }
      s.run();
    };
    Status st;
    if (ref.database.empty()) {
      st = impl_.read(body, true);
    } else {
      auto conn = Connection::open(ref.database, Connection::Mode::ReadOnly, impl_.options.busy_timeout_ms);
      if (!conn) return conn.error();
      st = detail::guarded([&] { body(**conn); });
    }
    if (!st.ok()) return st;
    if (!exists) return Status::not_found("no such message");
    if (stored) {
      if (auto part = mail::decode_structure(*stored)) return std::move(*part);
    }
    // Stored without one (or by another version): parse it as it is read, then keep it.
    auto source = open_message(ref);
    if (!source) return source.error();
    mail::StructureParser parser;
    std::string chunk;
    for (;;) {
      chunk.clear();
      if (Status r = (*source)->read(kAppendChunk, chunk); !r.ok()) return r;
      if (chunk.empty()) break;
      parser.feed(chunk);
    }
    source->reset();
    mail::Part root = parser.finish();
    if (impl_.writer) {
      const std::string encoded = mail::encode_structure(root);
      auto schema = std::make_shared<std::string>("main");
      Status w = impl_.write(
          [&](Connection& c) {
            c.prepare("UPDATE \"" + *schema + "\".mailbox SET mail_structure = ?1 WHERE mail_id = ?2")
                .bind_blob(1, encoded)
                .bind(2, ref.id)
                .run();
          },
          schema_resolver(ref, schema));
      if (!w.ok()) impl_.log("cannot store the structure of message " + std::to_string(ref.id) + ": " + w.to_string());
    }
    return root;
  }


 private:
  // Where a user's messages are, for a write: resolved by user_resolver() on the writer.
  struct UserSchemas {
    std::vector<std::string> schemas{"main"};  // the master's, then the user database's if any
    std::string store_in = "main";               // where new mail goes
    Status error;                                // why the user database could not be attached
    // Writes that touch existing messages need every database holding them.
    void require() const {
      if (!error.ok()) throw SqlError{Status::io_error("cannot use the user database: " + error.message())};
    }
  };

  std::function<bool(Connection&, std::uint64_t)> user_resolver(const std::string& user,
                                                                std::shared_ptr<UserSchemas> out) {
    return [this, user, out](Connection& w, std::uint64_t batch) {
      auto s = impl_.user_schema(w, user, batch);
      if (s && s->empty()) return false;  // no free slot in this batch
      *out = UserSchemas{};
      if (!s) out->error = s.error();
      else if (*s != "main") {
        out->schemas.push_back(*s);
        out->store_in = *s;
      }
      return true;
    };
  }

  struct FolderRow {
    std::int64_t id = 0;
    std::uint32_t uidvalidity = 0;
  };
  static std::optional<FolderRow> find_folder_row(Connection& c, const std::string& user, const std::string& name) {
    Stmt s = c.prepare("SELECT folder_id, folder_uidvalidity FROM main.folders WHERE folder_user = ?1 AND folder_name = ?2");
    s.bind(1, user).bind(2, name);
    std::optional<FolderRow> out;
    if (s.step()) out = FolderRow{s.int64(0), static_cast<std::uint32_t>(s.int64(1))};
    s.run();
    return out;
  }

  static void require_user(Connection& c, const std::string& user) {
    Stmt s = c.prepare("SELECT 1 FROM main.users WHERE user_name = ?1");
    s.bind(1, user);
    const bool exists = s.step();
    s.run();
    if (!exists) throw SqlError{Status::not_found("no such user '" + user + "'")};
  }

  // One stored message of a folder, as the writer found it.
  struct Row {
    std::string schema;
    std::int64_t id = 0;
    std::uint32_t uid = 0;
    std::int64_t modseq = 0;
    std::uint32_t flags = 0;
    std::string keywords;
  };
  // The messages of `folder` with these UIDs (ascending, each once; missing ones left out):
  // one seek on idx_mailbox_folder_uid per UID and database for a few UIDs, one range of it
  // from the lowest to the highest per database for many (a client's "1:*").
  static std::vector<Row> rows_by_uid(Connection& c, const std::vector<std::string>& schemas, std::int64_t folder,
                                      std::vector<std::uint32_t> uids) {
    std::sort(uids.begin(), uids.end());
    uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
    std::vector<Row> out;
    if (uids.empty()) return out;
    constexpr const char* kColumns = "mail_id, mail_uid, mail_modseq, mail_flags, COALESCE(mail_keywords, '')";
    auto row = [](const Stmt& s, const std::string& schema) {
      return Row{schema, s.int64(0), static_cast<std::uint32_t>(s.int64(1)), s.int64(2),
                 static_cast<std::uint32_t>(s.int64(3)), s.text(4)};
    };
    if (uids.size() > 32) {
      for (const std::string& schema : schemas) {
        Stmt s = c.prepare(std::string("SELECT ") + kColumns + " FROM \"" + schema +
                           "\".mailbox WHERE mail_folder = ?1 AND mail_uid BETWEEN ?2 AND ?3");
        s.bind(1, folder).bind(2, static_cast<std::int64_t>(uids.front())).bind(3, static_cast<std::int64_t>(uids.back()));
        while (s.step()) {
          const auto uid = static_cast<std::uint32_t>(s.int64(1));
          if (std::binary_search(uids.begin(), uids.end(), uid)) out.push_back(row(s, schema));
        }
      }
      std::sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.uid < b.uid; });
      return out;
    }
    for (std::uint32_t uid : uids) {
      for (const std::string& schema : schemas) {
        Stmt s = c.prepare(std::string("SELECT ") + kColumns + " FROM \"" + schema +
                           "\".mailbox WHERE mail_folder = ?1 AND mail_uid = ?2");
        s.bind(1, folder).bind(2, static_cast<std::int64_t>(uid));
        const bool found = s.step();
        if (found) out.push_back(row(s, schema));
        s.run();
        if (found) break;
      }
    }
    return out;
  }

  // Logs a UID removed from a folder with a new modseq of the folder (RFC 7162 3.2.10, VANISHED).
  static void log_expunged(Connection& c, std::int64_t folder, std::uint32_t uid) {
    c.prepare("INSERT OR REPLACE INTO main.expunged (exp_folder, exp_uid, exp_modseq) VALUES (?1, ?2, ?3)")
        .bind(1, folder)
        .bind(2, static_cast<std::int64_t>(uid))
        .bind(3, next_modseq(c, folder))
        .run();
  }

  // Keywords after a STORE; RFC 9051 2.3.2: keywords are compared without regard to case.
  static std::string apply_keywords(const std::string& current, FlagOp op, const std::vector<std::string>& given) {
    std::vector<std::string> now;
    for (std::size_t pos = 0; pos < current.size();) {
      std::size_t end = current.find(' ', pos);
      if (end == std::string::npos) end = current.size();
      if (end > pos) now.push_back(current.substr(pos, end - pos));
      pos = end + 1;
    }
    auto has = [](const std::vector<std::string>& v, const std::string& k) {
      return std::any_of(v.begin(), v.end(), [&](const std::string& x) { return proto::ascii_lower(x) == proto::ascii_lower(k); });
    };
    std::vector<std::string> out;
    if (op == FlagOp::Replace) {
      for (const std::string& k : given)
        if (!k.empty() && !has(out, k)) out.push_back(k);
    } else if (op == FlagOp::Add) {
      out = now;
      for (const std::string& k : given)
        if (!k.empty() && !has(out, k)) out.push_back(k);
    } else {
      for (const std::string& k : now)
        if (!has(given, k)) out.push_back(k);
    }
    std::string joined;
    for (const std::string& k : out) joined += (joined.empty() ? "" : " ") + k;
    return joined;
  }

  Result<Appended> store_appended(Delivery d, std::string_view user, std::string_view folder, std::uint32_t flags,
                                  std::string_view keywords, std::int64_t internal_date) {
    if (message_size(d) > kMaxStoredMessage) return Status::invalid_argument("message too large to store");
    const std::string u(user), n = folder_key(folder);
    d.ident = mail::new_queue_id();
    d.envelope_from = "";
    d.protocol = "imap";
    d.local.push_back({u, u, n});
    StoredExtras extras;
    extras.structure = delivery_structure(d);
    extras.flags = flags;
    const std::string kw = apply_keywords("", FlagOp::Replace, split_words(keywords));
    if (!kw.empty()) extras.keywords = kw;
    extras.internal_date = internal_date;
    const auto wire = static_cast<std::int64_t>(proto::wire_size(d.data) + (d.spool ? d.spool->wire_size().total() : 0));
    auto dbs = std::make_shared<UserSchemas>();
    Appended out;
    Status st = impl_.write(
        [&](Connection& c) {
          require_user(c, u);
          auto f = find_folder_row(c, u, n);
          // RFC 9051 6.3.12: no such folder; the caller answers with TRYCREATE.
          if (!f) throw SqlError{Status::not_found("no folder '" + n + "'")};
          const std::int64_t now = detail::unix_now();
          detail::NewMessage m;
          if (dbs->store_in == "main") {
            if (!dbs->error.ok())
              impl_.log("user database of " + u + " unusable, storing in the master: " + dbs->error.to_string());
            m = insert_local(c, impl_.foreign_rows, "main", d, d.local[0], now, wire, extras);
          } else {
            c.exec("SAVEPOINT userdb");
            Status in_user = detail::guarded(
                [&] { m = insert_local(c, impl_.foreign_rows, dbs->store_in, d, d.local[0], now, wire, extras); });
            if (in_user.ok()) {
              c.exec("RELEASE userdb");
            } else {
              c.exec("ROLLBACK TO userdb");
              c.exec("RELEASE userdb");
              m = insert_local(c, impl_.foreign_rows, "main", d, d.local[0], now, wire, extras);
            }
          }
          out = {f->uidvalidity, static_cast<std::uint32_t>(m.uid), static_cast<std::uint64_t>(m.modseq)};
          impl_.note_mail_change();
        },
        user_resolver(u, dbs));
    if (!st.ok()) return st;
    return out;
  }

  static std::vector<std::string> split_words(std::string_view text) {
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t end = text.find(' ', pos);
      if (end == std::string_view::npos) end = text.size();
      if (end > pos) out.emplace_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    return out;
  }

  Result<Copied> copy_or_move(std::string_view user, std::string_view from, const std::vector<std::uint32_t>& uids,
                              std::string_view to, bool move) {
    const std::string u(user), src = folder_key(from), dst = folder_key(to);
    auto dbs = std::make_shared<UserSchemas>();
    Copied out;
    Status st = impl_.write(
        [&](Connection& c) {
          out = {};
          dbs->require();
          auto f = find_folder_row(c, u, src);
          if (!f) throw SqlError{Status::not_found("no folder '" + src + "'")};
          auto t = find_folder_row(c, u, dst);
          if (!t) throw SqlError{Status::not_found("no folder '" + dst + "'")};
          out.uidvalidity = t->uidvalidity;
          for (const Row& r : rows_by_uid(c, dbs->schemas, f->id, uids)) {
            auto [uid, modseq] = detail::allocate_uid(c, t->id);
            // RFC 9051 6.4.7: the copy keeps flags, keywords and internal date. mail_uidl stays
            // with the original (a POP3 unique-id is never shown twice).
            const std::string table = "\"" + r.schema + "\".mailbox";
            std::int64_t blob_size = 0;  // a large BLOB is copied in chunks, not held whole
            {
              Stmt t = c.prepare("SELECT CASE WHEN typeof(mail_data) = 'blob' THEN length(mail_data) ELSE 0 END FROM " +
                                 table + " WHERE mail_id = ?1");
              t.bind(1, r.id);
              if (t.step()) blob_size = t.int64(0);
              t.run();
            }
            const bool chunked = blob_size > static_cast<std::int64_t>(kAppendChunk);
            Stmt insert = c.prepare("INSERT INTO " + table +
                      " (mail_user, mail_read, mail_ident, mail_envelopeto, mail_envelopefrom, "
                      "mail_submission, mail_submitter, mail_proto, mail_folder, mail_uid, mail_modseq, mail_flags, "
                      "mail_keywords, mail_internaldate, mail_size, mail_wiresize, mail_structure, mail_data) "
                      "SELECT mail_user, mail_read, mail_ident, mail_envelopeto, mail_envelopefrom, mail_submission, "
                      "mail_submitter, mail_proto, ?1, ?2, ?3, mail_flags, mail_keywords, mail_internaldate, "
                      "mail_size, mail_wiresize, mail_structure, " +
                      std::string(chunked ? "zeroblob(?5)" : "mail_data") + " FROM " + table + " WHERE mail_id = ?4");
            insert.bind(1, t->id).bind(2, uid).bind(3, modseq).bind(4, r.id);
            if (chunked) insert.bind(5, blob_size);
            insert.run();
            if (chunked) {
              detail::Blob into(c, r.schema, "mailbox", "mail_data", c.last_insert_rowid(), true);
              detail::Blob from_blob(c, r.schema, "mailbox", "mail_data", r.id, false);
              std::string chunk;
              for (std::uint64_t off = 0; off < static_cast<std::uint64_t>(blob_size); off += chunk.size()) {
                from_blob.read(off, static_cast<std::size_t>(std::min<std::uint64_t>(kAppendChunk, blob_size - off)), chunk);
                into.write(off, chunk);
              }
            }
            out.uids.emplace_back(r.uid, static_cast<std::uint32_t>(uid));
            if (move) {
              // RFC 6851 3.3: the originals are expunged in the same transaction.
              log_expunged(c, f->id, r.uid);
              c.prepare("DELETE FROM \"" + r.schema + "\".mailbox WHERE mail_id = ?1").bind(1, r.id).run();
            }
          }
          if (!out.uids.empty()) impl_.note_mail_change();
        },
        user_resolver(u, dbs));
    if (!st.ok()) return st;
    return out;
  }

  // A read connection to the user database of `user` (none when the user has none), after the
  // rows other programs wrote are numbered. NotFound for an unknown user, IoError when the
  // user database cannot be read.
  struct UserReader {
    std::string path;
    std::unique_ptr<Connection> conn;
  };
  Result<UserReader> user_reader(const std::string& u) {
    std::optional<std::string> db;  // the user database, if any
    bool found = false, foreign = false;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT user_database FROM users WHERE user_name = ?1");
      s.bind(1, u);
      if (s.step()) {
        found = true;
        db = s.opt_text(0);
      }
      s.run();
      if (found) foreign = detail::has_foreign_rows(c, "main", u);
    });
    if (!st.ok()) return st;
    if (!found) return Status::not_found("no such user '" + u + "'");
    if (db && db->size() <= 1) db.reset();
    UserReader out;
    if (db) {
      auto conn = Connection::open(*db, Connection::Mode::ReadOnly, impl_.options.busy_timeout_ms);
      if (!conn) return Status::io_error("cannot read the user database of " + u + ": " + conn.error().message());
      out.path = *db;
      out.conn = std::move(*conn);
      // A file to upgrade, or rows other programs wrote: through the writer, which attaches it.
      st = detail::guarded([&] {
        foreign = foreign || detail::read_schema_version(*out.conn) != detail::kSchemaVersion ||
                  detail::has_foreign_rows(*out.conn, "main", u);
      });
      if (!st.ok()) foreign = true;  // the writer's attach says what is wrong with the file
    }
    if (foreign) {
      if (Status a = adopt_foreign(u); !a.ok()) return a;
    }
    return out;
  }

  std::function<bool(Connection&, std::uint64_t)> schema_resolver(
      const MessageRef& ref, std::shared_ptr<std::string> schema) {
    if (ref.database.empty()) return nullptr;
    std::string path = ref.database;
    return [this, path, schema](Connection& w, std::uint64_t batch) {
      auto s = impl_.user_databases.attach(w, path, batch, impl_.options.logger);
      if (!s) throw SqlError{s.error()};
      if (s->empty()) return false;
      *schema = *s;
      return true;
    };
  }

  // Gives the rows other programs wrote for `user`, in the master and in the user's database
  // (attached, and so upgraded, on the writer), folders and UIDs in one write transaction.
  Status adopt_foreign(const std::string& user) {
    Status attach_status;
    std::vector<std::string> schemas;
    Status st = impl_.write([&](Connection& c) {
                              detail::adopt_foreign_rows(c, user, schemas);
                              impl_.note_mail_change();  // mail appeared for IMAP and POP3
                            },
                            [&](Connection& w, std::uint64_t batch) {
                              auto s = impl_.user_schema(w, user, batch);
                              if (s && s->empty()) return false;  // no free slot in this batch
                              attach_status = s ? Status() : s.error();
                              schemas = {"main"};
                              if (s && *s != "main") schemas.push_back(*s);
                              return true;
                            });
    if (!st.ok()) return st;
    if (!attach_status.ok())
      return Status::io_error("cannot use the user database of " + user + ": " +
                              attach_status.message());
    return Status();
  }

  Store::Impl& impl_;
};

}  // namespace

std::unique_ptr<Mailboxes> detail::make_mailboxes(Store::Impl& impl) {
  return std::make_unique<MailboxesImpl>(impl);
}

}  // namespace cmail::store
