// libcmail/store/writer.h: the one writer thread of a database, with group commit.
//
// Callers submit jobs; the thread takes every job waiting (up to max_batch), runs each inside
// its own SAVEPOINT of one BEGIN IMMEDIATE transaction, commits once (one fsync of the WAL for
// the whole batch), then calls each job's done(Status): OK only if its changes are committed.
// A job that throws SqlError is rolled back alone and fails alone; a failed COMMIT fails the
// whole batch and nothing of it is applied. A batch of one, or of jobs marked rerunnable, runs
// without the savepoints; if one of its jobs fails, it is rolled back and run again with them.
//
// A job may have a prepare step, run on the writer connection outside any transaction, for
// work SQLite forbids inside one (ATTACH of a user database). It gets the batch number (a new
// one for every transaction) and returns false to ask that the batch be committed first (the
// job is then prepared again in the next batch).
//
// Checkpoints: a checkpointer thread with its own connection copies the WAL back into the
// database file (PASSIVE, so it never blocks the writer or readers) whenever the WAL holds
// kCheckpointPages or more. That alone never shortens the WAL under steady load: SQLite starts
// the WAL over only when a write transaction begins with every frame already copied, and the
// writer commits again before the checkpointer is done. So at kWriterCheckpointPages the writer
// checkpoints in line (PASSIVE too), which finds most of the work done and lets its next
// transaction start the WAL over. A short WAL matters beyond its size: SQLite finds a page in
// it through a hash chain that grows with every write of that page since the WAL began, and a
// folder row or an index root is written by every delivery (docs/performance.md).
//
// Thread-safety: submit() and run() from any thread; the destructor drains the queue.
// Callbacks run on the writer thread and must not call run() (that would deadlock).
#pragma once

#include "sqlite.h"

#include <cmail/store/store.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace cmail::store::detail {

struct Job {
  std::function<bool(Connection&, std::uint64_t batch)> prepare;  // optional
  std::function<void(Connection&)> apply;    // inside the transaction; throws SqlError
  std::function<void(Status)> done;          // optional
  // apply changes nothing outside the transaction, so it may run again after a rollback: a
  // batch of such jobs runs without a savepoint each, and again with them if one fails.
  bool rerunnable = false;
};

class Writer {
 public:
  static constexpr int kCheckpointPages = 1000;        // SQLite's own default threshold
  static constexpr int kWriterCheckpointPages = 2000;

  // `checkpointer` is a second connection to the same file (may be null: then the writer
  // checkpoints in line as SQLite does by default).
  // `after_commit`, if set, runs on the writer thread after every successful COMMIT (before the
  // jobs' callbacks): the store's change notification.
  Writer(std::unique_ptr<Connection> conn, std::unique_ptr<Connection> checkpointer,
         std::size_t max_batch, std::function<void()> after_commit = nullptr);
  ~Writer();  // completes every submitted job, then stops

  void submit(Job job);
  // Submits and waits for the commit. REQUIRES: not called on the writer thread.
  Status run(std::function<void(Connection&)> apply,
             std::function<bool(Connection&, std::uint64_t)> prepare = nullptr);
  WriterStats stats() const;
  // While `failure` is not OK, every job fails with it untouched (Store::fail_writes).
  void fail_writes(Status failure);

 private:
  void loop();
  void commit_batch(std::deque<Job>& batch);
  void checkpoint_loop();
  static int on_wal_commit(void* self, struct sqlite3* db, const char* schema, int pages);

  std::unique_ptr<Connection> conn_;
  std::size_t max_batch_;
  std::function<void()> after_commit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  Status failure_;  // fail_writes
  WriterStats stats_;
  std::uint64_t batch_number_ = 0;

  std::unique_ptr<Connection> checkpointer_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_wanted_ = false;
  bool ckpt_stopping_ = false;
  std::thread ckpt_thread_;

  std::thread thread_;
};

}  // namespace cmail::store::detail
