// net::serve_smtp and its Completion: verdicts answered later, from another thread, or from
// inside a Session callback, reach the engine in order on the loop thread. The client is our
// own smtp::Client engine over Runtime::connect, on the same loop, on loopback; for
// net::serve_imap, a client that sends its command lines after the greeting.
#include <cmail/imap/server.h>
#include <cmail/net/runtime.h>
#include <cmail/net/serve.h>
#include <cmail/smtp/client.h>
#include <cmail/smtp/server.h>

#include "../unit/fakes.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace cmail;
using namespace cmail::test;
using namespace std::chrono_literals;

namespace {

// A Session that answers MAIL from inside its own callback (through the Completion, which
// must post rather than re-enter the engine) and the end of data from a worker thread.
struct Deferred : smtp::Session {
  net::Completion<smtp::Verdict> done;
  std::vector<std::thread>* threads;
  std::string data;
  std::atomic<int>* stored;

  Deferred(net::Completion<smtp::Verdict> d, std::vector<std::thread>* t, std::atomic<int>* s)
      : done(std::move(d)), threads(t), stored(s) {}
  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override {
    done(smtp::Verdict::accept("sender later"));  // inside a callback: must be posted
    return smtp::Verdict::pending();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override {
    return smtp::Verdict::accept();
  }
  void data_chunk(std::string_view b) override { data += b; }
  smtp::Verdict data_end(const smtp::SessionInfo&) override {
    threads->emplace_back([d = done, s = stored, size = data.size()] {
      s->fetch_add(static_cast<int>(size));
      d(smtp::Verdict::accept("stored by a worker"));
    });
    return smtp::Verdict::pending();
  }
};

// Drives an smtp::Client: one message on Ready, then QUIT; records the results.
class ClientHandler final : public net::Handler {
 public:
  explicit ClientHandler(std::vector<std::string>* results) : client_({}), results_(results) {}
  void receive(std::string_view b) override {
    client_.receive(b);
    pump();
  }
  void receive_eof() override {
    client_.receive_eof();
    pump();
  }
  std::string_view pending_output() const override { return client_.pending_output(); }
  void consume_output(std::size_t n) override { client_.consume_output(n); }
  std::optional<proto::Event> next_event() override { return client_.next_event(); }
  void tls_established(const proto::TlsInfo& i) override { client_.tls_established(i); }
  void timed_out() override { client_.timed_out(); }
  bool wants_read() const override { return client_.wants_read(); }
  std::chrono::milliseconds timeout() const override { return client_.timeout(); }

 private:
  void pump() {
    while (auto e = client_.next_client_event()) {
      if (std::holds_alternative<smtp::client_event::Ready>(*e) && !sent_) {
        sent_ = true;
        smtp::Envelope env;
        env.from = *smtp::parse_path("<a@client.test>", true);
        env.recipients.push_back({*smtp::parse_path("<b@server.test>", false), {}});
        REQUIRE(client_.send_mail(env, "Subject: t\r\n\r\nbody\r\n").ok());
      } else if (auto* m = std::get_if<smtp::client_event::MailResult>(&*e)) {
        results_->push_back(m->reply.summary());
        client_.quit();
      } else if (auto* f = std::get_if<smtp::client_event::Failed>(&*e)) {
        results_->push_back("failed: " + f->reason);
      }
    }
  }
  smtp::Client client_;
  std::vector<std::string>* results_;
  bool sent_ = false;
};

}  // namespace

TEST_CASE("net::serve_smtp: completions from a worker thread and from inside a callback") {
  net::Runtime rt;
  std::vector<std::thread> threads;
  std::atomic<int> stored{0};
  std::vector<std::string> results;
  smtp::ServerOptions so;
  so.hostname = "server.test";
  auto id = net::serve_smtp(rt, {}, so, [&](const proto::PeerInfo&, net::Completion<smtp::Verdict> done) {
    return std::make_shared<Deferred>(std::move(done), &threads, &stored);
  });
  REQUIRE(id.has_value());
  net::ConnectOptions co;
  co.address = "127.0.0.1";
  co.port = rt.port(*id);
  std::string closed_reason = "not closed";
  rt.connect(co, std::make_unique<ClientHandler>(&results), [](Status st) { REQUIRE(st.ok()); },
             [&](std::string reason) {
               closed_reason = reason;
               rt.shutdown(1s);
             });
  CHECK(run_bounded(rt, 20s));  // a hang fails instead of blocking CI
  for (auto& t : threads) t.join();
  CHECK(results == std::vector<std::string>{"250 2.0.0 stored by a worker"});
  CHECK(stored.load() == static_cast<int>(std::string("Subject: t\r\n\r\nbody\r\n").size()));
  CHECK(closed_reason.empty());  // an orderly QUIT
}

TEST_CASE("net::serve_smtp: a Completion called after its connection closed does nothing") {
  struct Waiting : smtp::Session {
    bool* destroyed;
    explicit Waiting(bool* d) : destroyed(d) {}
    ~Waiting() override { *destroyed = true; }
    smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path&, const smtp::MailParams&) override {
      return smtp::Verdict::pending();  // never answered while the connection lives
    }
    smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override {
      return smtp::Verdict::accept();
    }
    void data_chunk(std::string_view) override {}
    smtp::Verdict data_end(const smtp::SessionInfo&) override { return smtp::Verdict::accept(); }
  };
  net::Completion<smtp::Verdict> kept;
  bool destroyed = false;
  std::vector<std::string> results;
  {
    net::Runtime rt;
    auto id = net::serve_smtp(rt, {}, {}, [&](const proto::PeerInfo&, net::Completion<smtp::Verdict> done) {
      kept = done;
      rt.shutdown(0ms);  // close everything as soon as this connection stands
      return std::make_shared<Waiting>(&destroyed);
    });
    REQUIRE(id.has_value());
    net::ConnectOptions co;
    co.address = "127.0.0.1";
    co.port = rt.port(*id);
    rt.connect(co, std::make_unique<ClientHandler>(&results), [](Status) {}, [](std::string) {});
    CHECK(run_bounded(rt));
    REQUIRE(static_cast<bool>(kept));
    kept(smtp::Verdict::accept());  // the connection is gone: dropped (ASan checks the rest)
  }
  CHECK(destroyed);  // the connection released its Session; the Completion did not keep it
  kept(smtp::Verdict::accept());   // and the runtime is gone too
  CHECK(results.empty());          // the client never got its MAIL answered
}

namespace {

// An imap::Session that answers the log-in from a worker thread and LIST at once.
struct ImapDeferred : imap::Session {
  net::Completion<imap::Verdict> done;
  std::vector<std::thread>* threads;
  ImapDeferred(net::Completion<imap::Verdict> d, std::vector<std::thread>* t) : done(std::move(d)), threads(t) {}
  imap::Verdict login(const sasl::Credentials& c) override {
    threads->emplace_back([d = done, ok = c.authcid == "alice" && c.password == "pw"] {
      d(ok ? imap::Verdict::user("alice") : imap::Verdict::reject(imap::RespCode::AuthenticationFailed, "No"));
    });
    return imap::Verdict::pending();
  }
  imap::Verdict list_mailboxes() override {
    imap::MailboxInfo inbox;
    inbox.name = "INBOX";
    return imap::Verdict::mailboxes({inbox});
  }
};

// Sends its commands once the greeting is in, and records what came back.
class LineClient final : public net::Handler {
 public:
  LineClient(std::string commands, std::string* got) : commands_(std::move(commands)), got_(got) {}
  void receive(std::string_view b) override {
    *got_ += b;
    if (!sent_ && got_->find("\r\n") != std::string::npos) {
      sent_ = true;
      out_ += commands_;
    }
  }
  void receive_eof() override { eof_ = true; }
  std::string_view pending_output() const override { return out_; }
  void consume_output(std::size_t n) override { out_.erase(0, n); }
  std::optional<proto::Event> next_event() override { return std::nullopt; }
  void tls_established(const proto::TlsInfo&) override {}
  void timed_out() override { eof_ = true; }
  bool wants_read() const override { return !eof_; }
  std::chrono::milliseconds timeout() const override { return 10s; }

 private:
  std::string commands_, out_;
  std::string* got_;
  bool sent_ = false, eof_ = false;
};

}  // namespace

TEST_CASE("net::serve_imap: a log-in answered from a worker thread, pipelined commands after it, then LOGOUT closes") {
  net::Runtime rt;
  std::vector<std::thread> threads;
  imap::ServerOptions io;
  io.hostname = "imap.test";
  auto id = net::serve_imap(rt, {}, io, [&](const proto::PeerInfo&, net::Completion<imap::Verdict> done) {
    return std::make_shared<ImapDeferred>(std::move(done), &threads);
  });
  REQUIRE(id.has_value());
  net::ConnectOptions co;
  co.address = "127.0.0.1";
  co.port = rt.port(*id);
  std::string got;
  bool closed = false;
  rt.connect(co, std::make_unique<LineClient>("a1 LOGIN alice pw\r\na2 LIST \"\" *\r\na3 LOGOUT\r\n", &got),
             [](Status st) { REQUIRE(st.ok()); },
             [&](std::string) {
               closed = true;
               rt.shutdown(1s);
             });
  CHECK(run_bounded(rt, 20s));
  for (auto& t : threads) t.join();
  CHECK(closed);  // the server closed after LOGOUT
  CHECK(got.starts_with("* OK [CAPABILITY IMAP4rev2 "));
  const auto login = got.find("a1 OK ["), list = got.find("* LIST (\\HasNoChildren) \"/\" INBOX\r\na2 OK LIST completed\r\n");
  const auto bye = got.find("* BYE"), logout = got.find("a3 OK LOGOUT completed\r\n");
  REQUIRE(login != std::string::npos);
  REQUIRE(list != std::string::npos);
  REQUIRE(logout != std::string::npos);
  CHECK(login < list);  // LIST waited for the log-in's answer
  CHECK(list < bye);
  CHECK(bye < logout);
}
