#include "store/writer.h"
#include "testutil.h"

#include <cmail/store/store.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

using namespace cmail;
using namespace cmail::test;

namespace {

store::Delivery small(const std::string& ident, const std::string& user) {
  store::Delivery d;
  d.ident = ident;
  d.envelope_from = "a@b.test";
  d.data = "Subject: " + ident + "\r\n\r\nx";
  d.local.push_back({user, user + "@local.test"});
  d.queued.push_back({std::nullopt, "r@remote.test", {}});
  return d;
}

// Jobs 1..5 in one batch (job 0 holds the writer while they are submitted); job 3 inserts a
// value that is already there. Returns how often each job's apply ran, and each one's result.
struct BatchRun {
  std::array<int, 6> applied{};
  std::array<bool, 6> ok{};
  std::int64_t rows = 0;
};

BatchRun run_batch_with_a_failure(const std::string& path, bool rerunnable) {
  BatchRun r;
  auto conn = store::detail::Connection::open(path, store::detail::Connection::Mode::Create, 5000);
  REQUIRE(conn);
  (*conn)->exec("CREATE TABLE t (x INTEGER UNIQUE); INSERT INTO t VALUES (3)");
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> holding;
  std::atomic<int> done{0};
  {
    store::detail::Writer w(std::move(*conn), nullptr, 16);
    for (int i = 0; i < 6; ++i) {
      store::detail::Job job;
      job.rerunnable = rerunnable;
      job.apply = [&, i](store::detail::Connection& c) {
        ++r.applied[i];
        if (i == 0) {
          holding.set_value();
          released.wait();
        }
        c.prepare("INSERT INTO t VALUES (?1)").bind(1, i == 0 ? 100 : i).run();
      };
      job.done = [&, i](Status st) {
        r.ok[i] = st.ok();
        ++done;
      };
      w.submit(std::move(job));
      if (i == 0) holding.get_future().wait();  // the writer is inside job 0's transaction
    }
    release.set_value();
  }  // the destructor completes every job
  CHECK(done == 6);
  auto c = store::detail::Connection::open(path, store::detail::Connection::Mode::ReadOnly, 5000);
  REQUIRE(c);
  r.rows = *(*c)->query_int("SELECT COUNT(*) FROM t");
  return r;
}


}  // namespace

TEST_CASE("writer: a failing job in a batch of rerunnable jobs fails alone, the batch run again with savepoints") {
  TempDir dir;
  BatchRun r = run_batch_with_a_failure(dir.file("w"), true);
  CHECK(r.ok == std::array<bool, 6>{true, true, true, false, true, true});
  CHECK(r.rows == 1 + 5);  // the value there before, job 0's, and jobs 1, 2, 4 and 5
  // Without savepoints the batch ran as far as job 3, then again from the start with them.
  CHECK(r.applied == std::array<int, 6>{1, 2, 2, 2, 1, 1});
}

TEST_CASE("writer: jobs that may not run twice run once, each in its savepoint") {
  TempDir dir;
  BatchRun r = run_batch_with_a_failure(dir.file("w"), false);
  CHECK(r.ok == std::array<bool, 6>{true, true, true, false, true, true});
  CHECK(r.rows == 1 + 5);
  CHECK(r.applied == std::array<int, 6>{1, 1, 1, 1, 1, 1});
}

TEST_CASE("writer: concurrent producers lose nothing and share commits") {
  TempDir dir;
  auto store = open_store(dir.file("m"));
  insert_user(dir.file("m"), "u");
  constexpr int kThreads = 8, kEach = 150;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        Status st = store->deliver_sync(small("t" + std::to_string(t) + "-" + std::to_string(i), "u"));
        (st.ok() ? ok : failed)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok == kThreads * kEach);
  CHECK(failed == 0);
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == kThreads * kEach);
  CHECK(count(*c, "SELECT COUNT(DISTINCT mail_ident) FROM mailbox") == kThreads * kEach);
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox") == kThreads * kEach);
  // UIDs are 1..N without gaps or duplicates.
  CHECK(count(*c, "SELECT COUNT(DISTINCT mail_uid) FROM mailbox") == kThreads * kEach);
  CHECK(count(*c, "SELECT MAX(mail_uid) FROM mailbox") == kThreads * kEach);
  store::WriterStats stats = store->writer_stats();
  CHECK(stats.jobs == kThreads * kEach);
  // With 8 producers waiting on each other's commits, batches form.
  CHECK(stats.transactions < stats.jobs);
}

TEST_CASE("writer: asynchronous callbacks come after the commit, in submission order") {
  TempDir dir;
  auto store = open_store(dir.file("m"));
  insert_user(dir.file("m"), "u");
  std::mutex mu;
  std::vector<int> order;
  std::atomic<int> visible_at_callback{0};
  constexpr int kN = 200;
  for (int i = 0; i < kN; ++i) {
    store->deliver(small("a" + std::to_string(i), "u"), [&, i](Status st) {
      REQUIRE(st.ok());
      // A separate connection sees the row already: the commit happened before the callback.
      auto c = raw(dir.file("m"));
      auto s = c->prepare("SELECT COUNT(*) FROM mailbox WHERE mail_ident = ?1");
      s.bind(1, "a" + std::to_string(i));
      s.step();
      visible_at_callback += static_cast<int>(s.int64(0));
      std::lock_guard lock(mu);
      order.push_back(i);
    });
  }
  store.reset();  // drains
  CHECK(visible_at_callback == kN);
  REQUIRE(order.size() == kN);
  for (int i = 0; i < kN; ++i) CHECK(order[i] == i);
}

TEST_CASE("writer: a failing job in a batch fails alone") {
  TempDir dir;
  auto store = open_store(dir.file("m"));
  insert_user(dir.file("m"), "u");
  std::atomic<int> ok{0}, bad{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 100; ++i) {
    // Every third delivery names a user that does not exist.
    store->deliver(small("b" + std::to_string(i), i % 3 == 0 ? "ghost" : "u"), [&](Status st) {
      (st.ok() ? ok : bad)++;
      done++;
    });
  }
  store.reset();
  CHECK(done == 100);
  CHECK(bad == 34);
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == ok.load());
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox") == ok.load());
}

TEST_CASE("writer: several processes writing the same file lose nothing") {
  TempDir dir;
  const std::string path = dir.file("m");
  { open_store(path); }
  insert_user(path, "u");
  constexpr int kProcs = 3, kEach = 60;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int failures = 0;
      {
        auto s = store::Store::open(path);
        if (!s) _exit(10);
        for (int i = 0; i < kEach; ++i)
          failures += !(*s)->deliver_sync(small("p" + std::to_string(p) + "-" + std::to_string(i), "u")).ok();
      }
      _exit(failures ? 1 : 0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  auto c = raw(path);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == kProcs * kEach);
  CHECK(count(*c, "SELECT COUNT(DISTINCT mail_uid) FROM mailbox") == kProcs * kEach);
  CHECK(count(*c, "SELECT folder_uidnext FROM folders") == kProcs * kEach + 1);
}

TEST_CASE("writer: a lock held by another process past the busy timeout fails with Busy") {
  TempDir dir;
  const std::string path = dir.file("m");
  store::StoreOptions o;
  o.busy_timeout_ms = 200;
  auto store = open_store(path, o);
  insert_user(path, "u");
  auto holder = raw(path);
  holder->exec("BEGIN IMMEDIATE");
  Status st = store->deliver_sync(small("x", "u"));
  CHECK(st.is_busy());
  holder->exec("ROLLBACK");
  CHECK(store->deliver_sync(small("y", "u")).ok());
  auto c = raw(path);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = 'x'") == 0);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_ident = 'y'") == 1);
}

TEST_CASE("writer: a failing job alone in its transaction reports its own error and leaves nothing") {
  TempDir dir;
  auto store = open_store(dir.file("m"));
  insert_user(dir.file("m"), "u");
  // One at a time, so that every job is a batch of one (run without a savepoint).
  for (int i = 0; i < 6; ++i) {
    Status st = store->deliver_sync(small("c" + std::to_string(i), i % 2 ? "ghost" : "u"));
    if (i % 2) {
      REQUIRE_FALSE(st.ok());
      // The job's own failure (the unknown user), not the COMMIT of a transaction rolled back.
      CHECK(st.to_string().find("no transaction") == std::string::npos);
      CHECK(st.to_string().find("FOREIGN KEY") != std::string::npos);
    } else {
      CHECK(st.ok());
    }
  }
  store::WriterStats stats = store->writer_stats();
  CHECK(stats.jobs == 6);
  CHECK(stats.transactions == 3);  // the failed ones committed nothing
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 3);
  CHECK(count(*c, "SELECT COUNT(*) FROM outbox") == 3);  // the failed deliveries' queue rows went with them
  CHECK(count(*c, "SELECT MAX(mail_uid) FROM mailbox") == 3);
}

TEST_CASE("writer: checkpoints keep the WAL short under steady writing") {
  TempDir dir;
  auto store = open_store(dir.file("m"));
  insert_user(dir.file("m"), "u");
  // About 4 pages a message (the row and its overflow, two indexes, the folder, the sequence):
  // 900 messages write some 3,600 frames, past the checkpointer's 1,000 several times.
  for (int i = 0; i < 900; ++i) {
    store::Delivery d = small("w" + std::to_string(i), "u");
    d.data = "Subject: w\r\n\r\n" + std::string(5000, 'x') + "\r\n";
    d.queued.clear();
    REQUIRE(store->deliver_sync(std::move(d)).ok());
  }
  // PRAGMA wal_checkpoint's second column: the frames in the WAL now. A checkpointer that never
  // copies anything leaves all of them (the writer's old bound was 20,000). The first column
  // says busy while the store's own checkpointer is at it: then ask again, for at most 5 s.
  auto c = raw(dir.file("m"));
  c->exec("PRAGMA journal_mode = WAL");  // a connection opens the WAL with its first statement
  std::int64_t busy = 1, frames = -1;
  for (int tries = 0; busy != 0 && tries < 500; ++tries) {
    if (tries > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto s = c->prepare("PRAGMA wal_checkpoint(PASSIVE)");
    REQUIRE(s.step());
    busy = s.int64(0);
    frames = s.int64(1);
    s.run();
  }
  REQUIRE(busy == 0);
  INFO("frames in the WAL: " << frames);
  CHECK(frames > 0);
  CHECK(frames < 2500);
}
