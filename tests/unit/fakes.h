// tests/unit/fakes.h: the test doubles and bounded waits that unit and net tests share.
//
// - TempDir, read_file(), write_file(): a scratch directory per test, removed at scope end.
// - wait_until(): polls a condition until it holds or a deadline passes (never a bare sleep).
// - FakeLoop: stands in for the runtime behind a store-backed Session (its Executor).
// - run_bounded(): runs a runtime's loop on the test thread with a watchdog.
// Nothing here needs the store or sockets; database helpers are in testutil.h.
#pragma once

#include <cmail/proto/transport.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cmail::test {

// A fresh directory under $TMPDIR, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cmail-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    REQUIRE(p != nullptr);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Polls `done` every `step` until it returns true or `timeout` passed; returns its last value.
template <typename Pred>
bool wait_until(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::chrono::milliseconds step = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(step);
  }
  return true;
}

// Stands in for the runtime: run_blocking runs at once on the calling thread, post queues the
// work for the "loop" (the test thread), which runs it in pump() or run_posted(). Posts may
// come from any thread (the store's writer completes verdicts from its own).
class FakeLoop {
 public:
  proto::Executor executor() {
    return proto::Executor{[](std::function<void()> fn) { fn(); },
                           [this](std::function<void()> fn) {
                             std::lock_guard lock(mu_);
                             posted_.push_back(std::move(fn));
                             cv_.notify_all();
                           },
                           // Timers do not wait here: the work is queued at once and the wait
                           // recorded (waits()), so that tests see the delays without sleeping.
                           [this](std::chrono::milliseconds after, std::function<void()> fn) {
                             std::lock_guard lock(mu_);
                             waits_.push_back(after);
                             posted_.push_back(std::move(fn));
                             cv_.notify_all();
                           }};
  }

  // Every post_after's wait so far, in order.
  std::vector<std::chrono::milliseconds> waits() {
    std::lock_guard lock(mu_);
    return waits_;
  }

  // Runs posted work until `done` holds; a check fails if it does not within `timeout`.
  template <typename Pred>
  bool pump(Pred done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        if (!cv_.wait_until(lock, deadline, [&] { return !posted_.empty(); })) {
          lock.unlock();
          if (done()) return true;
          FAIL_CHECK("nothing was posted for " << timeout.count() << " ms and the awaited condition does not hold");
          return false;
        }
        fn = std::move(posted_.front());
        posted_.pop_front();
      }
      fn();
    }
    return true;
  }

  // Runs what was posted until nothing is left (work that posts again is run too).
  void run_posted() {
    for (;;) {
      std::function<void()> fn;
      {
        std::lock_guard lock(mu_);
        if (posted_.empty()) return;
        fn = std::move(posted_.front());
        posted_.pop_front();
      }
      fn();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> posted_;
  std::vector<std::chrono::milliseconds> waits_;
};

// Runs rt.run() on this thread until something calls rt.shutdown(), at most `limit`. Returns
// false when the watchdog had to shut the runtime down; ends the process if run() does not
// return even then. Works with anything that has run() and a thread-safe shutdown(ms).
template <typename Runtime>
bool run_bounded(Runtime& rt, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::mutex mu;
  std::condition_variable cv;
  bool returned = false;
  std::atomic<bool> fired{false};
  std::thread dog([&] {
    std::unique_lock lock(mu);
    if (cv.wait_for(lock, limit, [&] { return returned; })) return;
    fired = true;
    rt.shutdown(std::chrono::milliseconds(0));
    if (cv.wait_for(lock, std::chrono::seconds(5), [&] { return returned; })) return;
    std::fprintf(stderr, "run() did not return after shutdown\n");
    std::_Exit(1);
  });
  rt.run();
  {
    std::lock_guard lock(mu);
    returned = true;
  }
  cv.notify_all();
  dog.join();
  return !fired;
}

}  // namespace cmail::test
