// tests/unit/crash_child.cc: a process that delivers messages as fast as it can from several
// threads and prints each message's ident once its commit is acknowledged. crash_test.py kills
// it with SIGKILL at a random moment and checks the database it leaves behind.
#include <cmail/store/store.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: crash-child DB\n");
    return 2;
  }
  cmail::store::StoreOptions o;
  o.create_if_missing = true;
  auto store = cmail::store::Store::open(argv[1], o);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().to_string().c_str());
    return 1;
  }
  std::mutex out;
  std::string big(64 * 1024, 'x');  // big enough that a commit spans many WAL pages
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (long i = 0;; ++i) {
        cmail::store::Delivery d;
        d.ident = std::to_string(getpid()) + "-" + std::to_string(t) + "-" + std::to_string(i);
        d.envelope_from = "a@b.test";
        d.data = "Subject: " + d.ident + "\r\n\r\n" + big;
        for (const char* u : {"u1", "u2", "u3"}) d.local.push_back({u, std::string(u) + "@x.test"});
        d.queued.push_back({std::nullopt, "r1@remote.test", {}});
        d.queued.push_back({std::nullopt, "r2@remote.test", {}});
        std::string ident = d.ident;
        if ((*store)->deliver_sync(std::move(d)).ok()) {
          std::lock_guard lock(out);
          std::printf("%s\n", ident.c_str());
          std::fflush(stdout);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
}
