// examples/intake.cc: mail intake inside your own program, no database.
//
// Accepts mail for one address on 127.0.0.1 and prints each message to stdout. The message is
// handed to a worker thread (where a real program would write it to its own storage or queue)
// and the client gets its 250 only when the worker is done: the Session answers the end of
// data with Verdict::pending(), and the worker completes that verdict, from its own thread,
// with the Completion that net::serve_smtp gave the Session.
//
//   build/examples/intake me@example.test 2525      (port 0: any free port)
#include <cmail/net/runtime.h>
#include <cmail/net/serve.h>
#include <cmail/smtp/server.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

using namespace cmail;

// One worker thread running jobs in order.
class Worker {
 public:
  Worker() : thread_([this] { loop(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void run(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread thread_;
};

// The policy of one connection: which recipients are ours, and what to do with a message.
class Printer : public smtp::Session {
 public:
  Printer(std::string me, Worker& worker, net::Completion<smtp::Verdict> done)
      : me_(std::move(me)), worker_(worker), done_(std::move(done)) {}

  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override {
    return smtp::Verdict::accept();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path& to, const smtp::RcptParams&) override {
    if (to.address() == me_) return smtp::Verdict::accept();
    return smtp::Verdict::reject(smtp::reply(550, {5, 1, 1}, "No such user here"));
  }
  void data_chunk(std::string_view bytes) override { message_ += bytes; }
  smtp::Verdict data_end(const smtp::SessionInfo& info) override {
    // The worker owns the message from here; the 250 waits for it (nothing is lost if it fails).
    worker_.run([text = "--- message from " + info.helo + " ---\n" + std::move(message_), done = done_] {
      std::cout << text << std::flush;
      done(smtp::Verdict::accept("Printed"));  // any thread: posted to the connection's loop
    });
    message_.clear();
    return smtp::Verdict::pending();
  }
  void reset() override { message_.clear(); }

 private:
  std::string me_;
  Worker& worker_;
  net::Completion<smtp::Verdict> done_;
  std::string message_;
};

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]), 2;
  Worker worker;  // outlives the runtime: a late completion finds the connection gone, harmlessly
  net::Runtime runtime;
  net::ListenerOptions listen;
  listen.port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  smtp::ServerOptions options;
  options.hostname = "intake.example";
  const std::string address = argv[1];
  auto id = net::serve_smtp(runtime, listen, options,
                            [&worker, address](const proto::PeerInfo&, net::Completion<smtp::Verdict> done) {
                              return std::make_shared<Printer>(address, worker, std::move(done));
                            });
  if (!id) return std::fprintf(stderr, "%s\n", id.error().to_string().c_str()), 1;
  runtime.handle_signals(std::chrono::seconds(5), nullptr);
  std::printf("listening on 127.0.0.1:%u\n", runtime.port(*id));
  std::fflush(stdout);
  runtime.run();
}
