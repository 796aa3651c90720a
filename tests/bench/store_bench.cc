// tests/bench/store_bench.cc: durable message stores per second through the group-commit
// writer, against one transaction per message on the same machine in the same run.
//
// Every message is 4 KiB, stored in the master mailbox with synchronous=FULL in WAL mode, so
// each commit is one fdatasync of the WAL. Producers are closed-loop: each waits for its
// message to be durable before sending the next, as an SMTP session waits before its 250.
//
// Usage: store-bench [SECONDS_PER_CASE [PRODUCERS]]   (meson test --benchmark -C build runs it;
// with PRODUCERS only that group-commit case runs, for profiling)
#include "store/sqlite.h"

#include <cmail/store/store.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

using namespace cmail;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kBody = [] {
  std::string s = "Subject: benchmark\r\n\r\n";
  while (s.size() < 4096) s += "The quick brown fox jumps over the lazy dog 0123456789.\r\n";
  s.resize(4096);
  return s;
}();

std::string fresh_db(const std::filesystem::path& dir, const std::string& name) {
  std::string path = (dir / name).string();
  std::filesystem::remove(path);
  if (!store::Store::create(path).ok()) std::abort();
  auto c = store::detail::Connection::open(path, store::detail::Connection::Mode::ReadWrite, 60000);
  (*c)->exec("INSERT INTO users (user_name) VALUES ('bench')");
  return path;
}

// Baseline: each producer has its own connection and commits each message alone.
double baseline(const std::filesystem::path& dir, int producers, double seconds) {
  std::string path = fresh_db(dir, "baseline.db3");
  std::atomic<long> stored{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      auto c = store::detail::Connection::open(path, store::detail::Connection::Mode::ReadWrite, 60000);
      (*c)->exec("PRAGMA synchronous = FULL");
      for (long i = 0; !stop; ++i) {
        (*c)->exec("BEGIN IMMEDIATE");
        (*c)->prepare("INSERT INTO mailbox (mail_user, mail_ident, mail_envelopeto, "
                      "mail_envelopefrom, mail_data) VALUES ('bench', ?1, 'b@x', 'a@y', ?2)")
            .bind(1, std::to_string(p) + "-" + std::to_string(i))
            .bind(2, kBody)
            .run();
        (*c)->exec("COMMIT");
        ++stored;
      }
    });
  }
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(stored) / elapsed;
}

// The writer, driven like the SMTP server drives it: `producers` sessions, each with one
// message in flight at a time, submitting its next message when the previous one is durable
// (from the completion callback, as an event loop would on its next turn).
double group_commit(const std::filesystem::path& dir, int producers, double seconds,
                    double* per_txn) {
  std::string path = fresh_db(dir, "group.db3");
  auto store = store::Store::open(path);
  if (!store) std::abort();
  std::atomic<long> stored{0};
  std::atomic<bool> stop{false};
  std::atomic<int> running{producers};
  std::function<void(int, long)> send = [&](int p, long i) {
    store::Delivery d;
    d.ident = std::to_string(p) + "-" + std::to_string(i);
    d.envelope_from = "a@y";
    d.data = kBody;
    d.local.push_back({"bench", "b@x"});
    (*store)->deliver(std::move(d), [&, p, i](Status st) {
      if (st.ok()) ++stored;
      if (stop) {
        --running;
        return;
      }
      send(p, i + 1);
    });
  };
  auto t0 = Clock::now();
  for (int p = 0; p < producers; ++p) send(p, 0);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  long done = stored;
  while (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto stats = (*store)->writer_stats();
  *per_txn = stats.transactions ? static_cast<double>(stats.jobs) / stats.transactions : 0;
  return static_cast<double>(done) / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  int only = argc > 2 ? std::atoi(argv[2]) : 0;  // profiling: run group commit with N producers only
  if (only > 0) {
    auto dir = std::filesystem::temp_directory_path() / ("cmail-bench-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    double per_txn = 0;
    double group = group_commit(dir, only, seconds, &per_txn);
    std::printf("group commit, %d producers: %.0f msg/s, %.1f msgs/commit\n", only, group, per_txn);
    std::filesystem::remove_all(dir);
    return 0;
  }
  auto dir = std::filesystem::temp_directory_path() / ("cmail-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);

  std::printf("durable 4 KiB message stores per second (WAL, synchronous=FULL), %.1f s per case\n",
              seconds);
  std::printf("%-10s %22s %22s %8s %12s\n", "producers", "baseline (txn/msg)", "group commit",
              "ratio", "msgs/commit");
  double base1 = baseline(dir, 1, seconds);
  for (int producers : {1, 20, 200}) {
    double base = producers == 1 ? base1 : baseline(dir, producers, seconds);
    double per_txn = 0;
    double group = group_commit(dir, producers, seconds, &per_txn);
    std::printf("%-10d %22.0f %22.0f %7.1fx %12.1f\n", producers, base, group, group / base1,
                per_txn);
  }
  std::printf("ratio = group commit / single-producer one-transaction-per-message baseline\n");
  std::filesystem::remove_all(dir);
  return 0;
}
