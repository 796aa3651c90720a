#include "writer.h"

#include <sqlite3.h>

#include <future>
#include <vector>

namespace cmail::store::detail {

Writer::Writer(std::unique_ptr<Connection> conn, std::unique_ptr<Connection> checkpointer,
               std::size_t max_batch, std::function<void()> after_commit)
    : conn_(std::move(conn)),
      max_batch_(max_batch ? max_batch : 1),
      after_commit_(std::move(after_commit)),
      checkpointer_(std::move(checkpointer)) {
  if (checkpointer_) {
    // Replaces SQLite's auto-checkpoint (which is itself a WAL hook) on this connection.
    sqlite3_wal_hook(conn_->raw(), &Writer::on_wal_commit, this);
    ckpt_thread_ = std::thread([this] { checkpoint_loop(); });
  }
  thread_ = std::thread([this] { loop(); });
}

Writer::~Writer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (ckpt_thread_.joinable()) {
    {
      std::lock_guard lock(ckpt_mu_);
      ckpt_stopping_ = true;
    }
    ckpt_cv_.notify_all();
    ckpt_thread_.join();
  }
}

int Writer::on_wal_commit(void* arg, sqlite3* db, const char* schema, int pages) {
  auto* self = static_cast<Writer*>(arg);
  if (pages >= kWriterCheckpointPages) {
    // The checkpointer fell behind (or a reader pins the WAL): bound the WAL here.
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (pages >= kCheckpointPages) {
    {
      std::lock_guard lock(self->ckpt_mu_);
      self->ckpt_wanted_ = true;
    }
    self->ckpt_cv_.notify_one();
  }
  return SQLITE_OK;
}

void Writer::checkpoint_loop() {
  for (;;) {
    {
      std::unique_lock lock(ckpt_mu_);
      ckpt_cv_.wait(lock, [this] { return ckpt_wanted_ || ckpt_stopping_; });
      if (ckpt_stopping_) return;
      ckpt_wanted_ = false;
    }
    // PASSIVE: copies what it can without waiting for or blocking anyone (errors are fine:
    // the next commit asks again, and the writer's own bound still holds).
    sqlite3_wal_checkpoint_v2(checkpointer_->raw(), "main", SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
  }
}

void Writer::submit(Job job) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

Status Writer::run(std::function<void(Connection&)> apply,
                   std::function<bool(Connection&, std::uint64_t)> prepare) {
  std::promise<Status> promise;
  auto future = promise.get_future();
  submit(Job{std::move(prepare), std::move(apply),
             [&promise](Status st) { promise.set_value(std::move(st)); }});
  return future.get();
}

WriterStats Writer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Writer::fail_writes(Status failure) {
  std::lock_guard lock(mu_);
  failure_ = std::move(failure);
}

void Writer::loop() {
  for (;;) {
    std::deque<Job> batch;
    Status failure;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      failure = failure_;
      if (!failure.ok()) stats_.jobs += batch.size();
    }
    if (failure.ok()) {
      commit_batch(batch);
      continue;
    }
    for (Job& job : batch)  // a simulated failure: as if BEGIN had failed, nothing is touched
      if (job.done) job.done(failure);
  }
}

void Writer::commit_batch(std::deque<Job>& batch) {
  // Prepare outside the transaction; a job that asks for a fresh batch goes back to the queue
  // front together with everything after it.
  std::vector<Status> results(batch.size());
  const std::uint64_t batch_number = ++batch_number_;
  std::size_t n = 0;
  for (; n < batch.size(); ++n) {
    if (!batch[n].prepare) continue;
    bool fits = true;
    results[n] = guarded([&] { fits = batch[n].prepare(*conn_, batch_number); });
    if (!fits && n > 0) break;
  }
  if (n < batch.size()) {
    std::lock_guard lock(mu_);
    for (std::size_t i = batch.size(); i-- > n;) queue_.push_front(std::move(batch[i]));
    batch.resize(n);
    results.resize(n);
  }

  // Without savepoints first, when that is safe: a batch of one (its failure rolls back the
  // transaction, which is what ROLLBACK TO would have done) or jobs that may run again. A
  // savepoint copies every page the job touches into the statement journal first (about
  // 15,000 instructions for a delivery, docs/performance.md). If a job of a larger batch
  // fails, the transaction is rolled back and the batch runs again with a savepoint per job.
  bool plain = true;
  if (batch.size() > 1)
    for (std::size_t i = 0; i < batch.size(); ++i) plain = plain && (batch[i].rerunnable || !results[i].ok());
  const std::vector<Status> prepared = plain && batch.size() > 1 ? results : std::vector<Status>{};  // for a rerun
  Status txn = guarded([&] { conn_->exec("BEGIN IMMEDIATE"); });
  bool rolled_back = false;  // a batch of one whose job failed: nothing to commit
  if (txn.ok() && plain) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!results[i].ok()) continue;
      results[i] = guarded([&] { batch[i].apply(*conn_); });
      if (results[i].ok()) continue;
      if (!sqlite3_get_autocommit(conn_->raw())) guarded([&] { conn_->exec("ROLLBACK"); }).ok();
      if (batch.size() == 1) {
        rolled_back = true;
      } else {
        plain = false;  // again, each job in its savepoint
        results = prepared;
        txn = guarded([&] { conn_->exec("BEGIN IMMEDIATE"); });
      }
      break;
    }
  }
  if (txn.ok() && !plain) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!results[i].ok()) continue;
      results[i] = guarded([&] {
        conn_->exec("SAVEPOINT job");
        try {
          batch[i].apply(*conn_);
        } catch (...) {
          conn_->exec("ROLLBACK TO job");
          conn_->exec("RELEASE job");
          throw;
        }
        conn_->exec("RELEASE job");
      });
      // Some errors (disk full, I/O) make SQLite roll back the whole transaction: then
      // nothing of this batch is applied and every job fails with that error.
      if (!results[i].ok() && sqlite3_get_autocommit(conn_->raw())) {
        txn = results[i];
        break;
      }
    }
  }
  if (txn.ok()) {
    if (!rolled_back) txn = guarded([&] { conn_->exec("COMMIT"); });
    if (!txn.ok() && !sqlite3_get_autocommit(conn_->raw())) guarded([&] { conn_->exec("ROLLBACK"); }).ok();
  }
  if (txn.ok() && !rolled_back && after_commit_) after_commit_();
  {
    std::lock_guard lock(mu_);
    stats_.transactions += txn.ok() && !rolled_back ? 1 : 0;
    stats_.jobs += batch.size();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].done) continue;
    batch[i].done(txn.ok() ? results[i] : txn);
  }
}

}  // namespace cmail::store::detail
