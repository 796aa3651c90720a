// The delivery queue: outbox rows, their failures and leases.
#include "store_impl.h"

#include <algorithm>

namespace cmail::store {

using detail::Connection;
using detail::SqlError;
using detail::Stmt;

namespace {

constexpr const char* kEntryColumns =
    "o.mail_id, COALESCE(o.mail_queueid, ''), o.mail_remote, o.mail_envelopefrom, "
    "o.mail_envelopeto, o.mail_submission, o.mail_submitter, o.mail_next_attempt, "
    "(SELECT COUNT(*) FROM faillog WHERE fail_mail = o.mail_id), "
    "(SELECT COALESCE(SUM(fail_fatal), 0) FROM faillog WHERE fail_mail = o.mail_id), "
    "o.mail_lease_owner, COALESCE(o.mail_lease_until, 0), o.mail_dsn_ret, o.mail_dsn_envid, "
    "o.mail_dsn_notify, o.mail_dsn_orcpt, length(CAST(o.mail_data AS BLOB)), o.mail_requiretls";

QueueEntry read_entry(const Stmt& s) {
  QueueEntry e;
  e.id = s.int64(0);
  e.queue_id = s.text(1);
  e.remote = s.opt_text(2);
  e.envelope_from = s.opt_text(3);
  e.envelope_to = s.text(4);
  e.submission = s.int64(5);
  e.submitter = s.opt_text(6);
  e.next_attempt = s.int64(7);
  e.failures = s.int64(8);
  e.fatal = s.int64(9) > 0;
  e.lease_owner = s.opt_text(10);
  e.lease_until = s.int64(11);
  e.dsn_ret = s.opt_text(12);
  e.dsn_envid = s.opt_text(13);
  e.dsn.notify = s.opt_text(14);
  e.dsn.orcpt = s.opt_text(15);
  e.size = s.is_null(16) ? 0 : s.int64(16);
  const std::int64_t tls = s.int64(17);
  e.tls_required = tls > 0 ? TlsRequired::Yes : tls < 0 ? TlsRequired::No : TlsRequired::Default;
  return e;
}

class QueueImpl final : public Queue {
 public:
  explicit QueueImpl(Store::Impl& impl) : impl_(impl) {}

  Result<std::vector<QueueEntry>> list() override {
    std::vector<QueueEntry> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(std::string("SELECT ") + kEntryColumns +
                         " FROM outbox o ORDER BY o.mail_id");
      while (s.step()) out.push_back(read_entry(s));
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::optional<QueueEntry>> find(std::int64_t id) override {
    std::optional<QueueEntry> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(std::string("SELECT ") + kEntryColumns +
                         " FROM outbox o WHERE o.mail_id = ?1");
      s.bind(1, id);
      if (s.step()) out = read_entry(s);
      s.run();
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::string> message_data(std::int64_t id) override {
    std::optional<std::string> data;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT mail_data FROM outbox WHERE mail_id = ?1");
      s.bind(1, id);
      if (s.step()) data = s.text(0);
      s.run();
    });
    if (!st.ok()) return st;
    if (!data) return Status::not_found("no queue entry " + std::to_string(id));
    return std::move(*data);
  }

  Result<std::vector<QueueFailure>> failures(std::int64_t id) override {
    std::vector<QueueFailure> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(
          "SELECT CAST(fail_time AS INTEGER), COALESCE(fail_message, ''), fail_fatal "
          "FROM faillog WHERE fail_mail = ?1 ORDER BY rowid");
      s.bind(1, id);
      while (s.step()) out.push_back({s.int64(0), s.text(1), s.int64(2) != 0});
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<QueueEntry>> lease_due(std::string_view owner, std::int64_t now,
                                            std::size_t max, std::int64_t lease_seconds) override {
    return lease(owner, now, lease_seconds,
                 "SELECT mail_id FROM outbox WHERE mail_next_attempt <= ?2 AND " + std::string(kFree) + " AND " +
                     kNotFatal + " ORDER BY mail_next_attempt, mail_id LIMIT ?4",
                 [&](Stmt& u) { u.bind(4, static_cast<std::int64_t>(max)); });
  }

  Result<std::vector<QueueEntry>> lease_ids(const std::vector<std::int64_t>& ids, std::string_view owner,
                                            std::int64_t now, std::int64_t lease_seconds) override {
    std::string list;
    for (std::int64_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
    if (list.empty()) return std::vector<QueueEntry>{};
    return lease(owner, now, lease_seconds,
                 "SELECT mail_id FROM outbox WHERE mail_id IN (" + list + ") AND mail_next_attempt <= ?2 AND " +
                     kFree + " AND " + kNotFatal,
                 nullptr);
  }

  Result<std::vector<QueueEntry>> lease_given_up(std::string_view owner, std::int64_t now, std::size_t max,
                                                 std::int64_t lease_seconds, std::int64_t retries,
                                                 std::int64_t max_age) override {
    // Driven from faillog (indexed): entries that never failed are not looked at.
    return lease(owner, now, lease_seconds,
                 "SELECT mail_id FROM outbox WHERE mail_id IN (SELECT DISTINCT fail_mail FROM faillog) AND " +
                     std::string(kFree) +
                     " AND (NOT " + kNotFatal +
                     " OR (SELECT COUNT(*) FROM faillog WHERE fail_mail = mail_id) >= ?5"
                     " OR (?6 > 0 AND mail_submission <= ?2 - ?6)) ORDER BY mail_id LIMIT ?4",
                 [&](Stmt& u) {
                   u.bind(4, static_cast<std::int64_t>(max)).bind(5, retries).bind(6, max_age);
                 });
  }

  void settle(std::vector<QueueOutcome> outcomes, std::string owner, std::function<void(Status)> done) override {
    detail::Job job;
    job.apply = [outcomes = std::move(outcomes), owner = std::move(owner)](Connection& c) {
      for (const QueueOutcome& o : outcomes) {
        if (o.kind == QueueOutcome::Kind::Delivered) {
          c.prepare("DELETE FROM outbox WHERE mail_id = ?1 AND mail_lease_owner = ?2").bind(1, o.id).bind(2, owner).run();
          continue;
        }
        int n = c.prepare(
                     "UPDATE outbox SET mail_lease_owner = NULL, mail_lease_until = NULL, "
                     "mail_next_attempt = CASE WHEN ?3 > 0 THEN ?3 ELSE mail_next_attempt END "
                     "WHERE mail_id = ?1 AND mail_lease_owner = ?2")
                    .bind(1, o.id)
                    .bind(2, owner)
                    .bind(3, o.next_attempt)
                    .run();
        if (n == 1 && o.kind == QueueOutcome::Kind::Failed)
          c.prepare("INSERT INTO faillog (fail_mail, fail_message, fail_fatal) VALUES (?1, ?2, ?3)")
              .bind(1, o.id)
              .bind(2, o.message)
              .bind(3, o.fatal ? 1 : 0)
              .run();
      }
    };
    job.done = std::move(done);
    job.rerunnable = true;
    if (!impl_.writer) {
      if (job.done) job.done(Status::read_only(impl_.path + " is open read-only"));
      return;
    }
    impl_.writer->submit(std::move(job));
  }

  Status renew(std::string_view owner, std::int64_t until) override {
    std::string who(owner);
    return impl_.write([&](Connection& c) {
      c.prepare("UPDATE outbox SET mail_lease_until = ?2 WHERE mail_lease_owner = ?1").bind(1, who).bind(2, until).run();
    });
  }

  Result<std::vector<std::string>> lease_owners() override {
    std::vector<std::string> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT DISTINCT mail_lease_owner FROM outbox WHERE mail_lease_owner IS NOT NULL");
      while (s.step()) out.push_back(s.text(0));
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::int64_t> release_owner(std::string_view owner) override {
    std::string who(owner);
    std::int64_t n = 0;
    Status st = impl_.write([&](Connection& c) {
      n = c.prepare("UPDATE outbox SET mail_lease_owner = NULL, mail_lease_until = NULL WHERE mail_lease_owner = ?1")
              .bind(1, who)
              .run();
      if (n > 0) impl_.note_queue_change();
    });
    if (!st.ok()) return st;
    return n;
  }

  Result<std::optional<std::int64_t>> next_due() override {
    std::optional<std::int64_t> out;
    Status st = impl_.read([&](Connection& c) {
      // The index on mail_next_attempt gives the first rows; leased or failed ones are skipped.
      Stmt s = c.prepare(std::string("SELECT mail_next_attempt FROM outbox WHERE mail_lease_owner IS NULL AND ") +
                         kNotFatal + " ORDER BY mail_next_attempt LIMIT 1");
      if (s.step()) out = s.int64(0);
      s.run();
    });
    if (!st.ok()) return st;
    return out;
  }

  std::string notify_path() const override { return detail::queue_notify_path(impl_.path); }
  void wake() override { detail::touch_notify(notify_path(), impl_.path); }

  Status complete(std::int64_t id, std::string_view owner) override {
    std::string who(owner);
    return impl_.write([&](Connection& c) {
      int n = c.prepare("DELETE FROM outbox WHERE mail_id = ?1 AND mail_lease_owner = ?2")
                  .bind(1, id)
                  .bind(2, who)
                  .run();
      if (n == 0) throw SqlError{Status::not_found("queue entry " + std::to_string(id) +
                                                   " is gone or not leased to " + who)};
    });
  }

  Status record_failure(std::int64_t id, std::string_view owner, std::string_view message,
                        bool fatal, std::int64_t next_attempt) override {
    std::string who(owner), msg(message);
    return impl_.write([&](Connection& c) {
      int n = c.prepare(
                   "UPDATE outbox SET mail_lease_owner = NULL, mail_lease_until = NULL, "
                   "mail_next_attempt = ?3 WHERE mail_id = ?1 AND mail_lease_owner = ?2")
                  .bind(1, id)
                  .bind(2, who)
                  .bind(3, next_attempt)
                  .run();
      if (n == 0) throw SqlError{Status::not_found("queue entry " + std::to_string(id) +
                                                   " is gone or not leased to " + who)};
      c.prepare("INSERT INTO faillog (fail_mail, fail_message, fail_fatal) VALUES (?1, ?2, ?3)")
          .bind(1, id)
          .bind(2, msg)
          .bind(3, fatal ? 1 : 0)
          .run();
    });
  }

  Status release(std::int64_t id, std::string_view owner) override {
    std::string who(owner);
    return impl_.write([&](Connection& c) {
      c.prepare(
           "UPDATE outbox SET mail_lease_owner = NULL, mail_lease_until = NULL "
           "WHERE mail_id = ?1 AND mail_lease_owner = ?2")
          .bind(1, id)
          .bind(2, who)
          .run();
    });
  }

  Result<std::int64_t> retry_now(std::optional<std::int64_t> id) override {
    std::int64_t changed = 0;
    Status st = impl_.write([&](Connection& c) {
      changed = c.prepare(
                     "UPDATE outbox SET mail_next_attempt = 0 "
                     "WHERE (?1 IS NULL OR mail_id = ?1) AND mail_next_attempt <> 0")
                    .bind(1, id)
                    .run();
      impl_.note_queue_change();  // also when nothing changed: an operator asked for a run
    });
    if (!st.ok()) return st;
    return changed;
  }

  Result<std::optional<StsPolicyRow>> mta_sts_policy(std::string_view domain) override {
    std::optional<StsPolicyRow> out;
    std::string d(domain);
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT sts_domain, sts_id, sts_policy, sts_fetched, sts_expires FROM mta_sts WHERE sts_domain = lower(?1)");
      s.bind(1, d);
      if (s.step()) out = StsPolicyRow{s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4)};
      s.run();
    }, true);
    if (!st.ok()) return st;
    return out;
  }

  Status save_mta_sts_policy(const StsPolicyRow& r) override {
    return impl_.write([&](Connection& c) {
      c.prepare("INSERT OR REPLACE INTO mta_sts (sts_domain, sts_id, sts_policy, sts_fetched, sts_expires) "
                "VALUES (lower(?1), ?2, ?3, ?4, ?5)")
          .bind(1, r.domain).bind(2, r.id).bind(3, r.policy).bind(4, r.fetched).bind(5, r.expires)
          .run();
    });
  }

  Status remove(std::int64_t id) override {
    return impl_.write([&](Connection& c) {
      int n = c.prepare("DELETE FROM outbox WHERE mail_id = ?1").bind(1, id).run();
      if (n == 0) throw SqlError{Status::not_found("no queue entry " + std::to_string(id))};
      impl_.note_queue_change();  // wakes the dispatcher (an entry in flight is then settled as gone)
    });
  }

 private:
  static constexpr const char* kFree = "(mail_lease_owner IS NULL OR mail_lease_until <= ?2)";
  static constexpr const char* kNotFatal =
      "NOT EXISTS (SELECT 1 FROM faillog WHERE fail_mail = mail_id AND fail_fatal)";

  // Leases the rows `select_ids` names (parameters ?2 = now, from ?4 on its own) to `owner` in
  // one UPDATE inside the writer's IMMEDIATE transaction, so that no other process can lease the
  // same rows between the choice and the mark; returns them in id order.
  Result<std::vector<QueueEntry>> lease(std::string_view owner, std::int64_t now, std::int64_t lease_seconds,
                                        const std::string& select_ids, const std::function<void(Stmt&)>& bind) {
    std::vector<QueueEntry> out;
    std::string who(owner);
    Status st = impl_.write([&](Connection& c) {
      out.clear();
      std::vector<std::int64_t> ids;
      Stmt u = c.prepare("UPDATE outbox SET mail_lease_owner = ?1, mail_lease_until = ?2 + ?3 WHERE mail_id IN (" +
                         select_ids + ") RETURNING mail_id");
      u.bind(1, who).bind(2, now).bind(3, lease_seconds);
      if (bind) bind(u);
      while (u.step()) ids.push_back(u.int64(0));
      std::sort(ids.begin(), ids.end());
      for (std::int64_t id : ids) {
        Stmt s = c.prepare(std::string("SELECT ") + kEntryColumns + " FROM outbox o WHERE o.mail_id = ?1");
        s.bind(1, id);
        if (s.step()) out.push_back(read_entry(s));
        s.run();
      }
    });
    if (!st.ok()) return st;
    return out;
  }

  Store::Impl& impl_;
};

}  // namespace

std::unique_ptr<Queue> detail::make_queue(Store::Impl& impl) {
  return std::make_unique<QueueImpl>(impl);
}

}  // namespace cmail::store
