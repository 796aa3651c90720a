// backends::SmtpFaults and FaultySmtpSession driving smtp::Server with byte strings: replies,
// dropped connections and delays on purpose, for chosen phases and recipients; and the
// engine's side of it (Verdict::disconnect, a 421 that closes).
#include "fakes.h"
#include "harness.h"

#include <cmail/backends/faults.h>
#include <cmail/smtp/server.h>

#include <algorithm>

using namespace cmail;
using namespace cmail::test;
using backends::SmtpFault;

namespace {

// The inner session: accepts everything, records what it was asked.
struct Inner : smtp::Session {
  std::vector<std::string>* calls;
  explicit Inner(std::vector<std::string>* c) : calls(c) {}
  smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path& from, const smtp::MailParams&) override {
    calls->push_back("MAIL " + from.address());
    return smtp::Verdict::accept();
  }
  smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path& to, const smtp::RcptParams&) override {
    calls->push_back("RCPT " + to.address());
    return smtp::Verdict::accept();
  }
  void data_chunk(std::string_view) override {}
  smtp::Verdict data_end(const smtp::SessionInfo&) override {
    calls->push_back("END");
    return smtp::Verdict::accept("Stored");
  }
  void reset() override { calls->push_back("RESET"); }
};

struct Rig {
  std::vector<std::string> calls;
  std::shared_ptr<backends::SmtpFaults> faults = std::make_shared<backends::SmtpFaults>();
  FakeLoop loop;
  backends::FaultySmtpSession session{faults, loop.executor()};
  smtp::Server server{[] {
    smtp::ServerOptions o;
    o.hostname = "mx.test";
    return o;
  }(), session};
  Rig() {
    session.set_inner(std::make_unique<Inner>(&calls));
    session.set_completion([this](smtp::Verdict v) { REQUIRE(server.complete(std::move(v)).ok()); });
    take_output(server);
    feed(server, "EHLO c.test\r\n");
    take_output(server);
  }
};

SmtpFault fault(SmtpFault::Phase phase, std::string recipient, SmtpFault::Action action, std::size_t times = 1) {
  SmtpFault f;
  f.phase = phase;
  f.recipient = std::move(recipient);
  f.action = action;
  f.times = times;
  return f;
}

}  // namespace

TEST_CASE("SmtpFaults: checks what it is given; times counts down; the first match applies") {
  backends::SmtpFaults faults;
  SmtpFault f = fault(SmtpFault::Phase::Rcpt, "", SmtpFault::Action::Reply);
  f.code = 250;
  CHECK(faults.add(f).code() == Status::Code::InvalidArgument);
  f.code = 600;
  CHECK(faults.add(f).code() == Status::Code::InvalidArgument);
  f.code = 451;
  f.text = "a\nb";
  CHECK(faults.add(f).code() == Status::Code::InvalidArgument);
  f.text.clear();
  f.action = SmtpFault::Action::Delay;
  f.delay = std::chrono::milliseconds(600'001);
  CHECK(faults.add(f).code() == Status::Code::InvalidArgument);
  f.delay = std::chrono::milliseconds(-1);
  CHECK(faults.add(f).code() == Status::Code::InvalidArgument);
  CHECK_FALSE(faults.take(SmtpFault::Phase::Rcpt, "x@y.test"));  // nothing was added

  SmtpFault bob = fault(SmtpFault::Phase::Rcpt, "Bob@L.test", SmtpFault::Action::Reply, 2);
  bob.code = 550;
  REQUIRE(faults.add(bob).ok());
  SmtpFault any = fault(SmtpFault::Phase::Rcpt, "", SmtpFault::Action::Disconnect, 1);
  REQUIRE(faults.add(any).ok());
  REQUIRE(faults.add(fault(SmtpFault::Phase::Mail, "", SmtpFault::Action::Reply, 0)).ok());  // times 0: none
  CHECK_FALSE(faults.take(SmtpFault::Phase::Mail, ""));
  auto first = faults.take(SmtpFault::Phase::Rcpt, "bob@l.test");  // without regard to case
  REQUIRE(first);
  CHECK(first->code == 550);
  CHECK(first->text == "Fault injected on purpose");
  CHECK(faults.take(SmtpFault::Phase::Rcpt, "BOB@l.test")->code == 550);
  CHECK(faults.take(SmtpFault::Phase::Rcpt, "bob@l.test")->action == SmtpFault::Action::Disconnect);
  CHECK_FALSE(faults.take(SmtpFault::Phase::Rcpt, "bob@l.test"));  // both used up
  REQUIRE(faults.add(fault(SmtpFault::Phase::Data, "carol@l.test", SmtpFault::Action::Reply)).ok());
  CHECK_FALSE(faults.take_data({"dave@l.test"}));
  CHECK(faults.take_data({"dave@l.test", "CAROL@l.test"}));
  REQUIRE(faults.add(fault(SmtpFault::Phase::Data, "", SmtpFault::Action::Reply, SIZE_MAX)).ok());
  faults.clear();
  CHECK_FALSE(faults.take_data({"dave@l.test"}));
}

TEST_CASE("FaultySmtpSession: a reply on purpose, for one recipient, in place of the inner session") {
  SPLIT_SUBCASES();
  Rig r;
  SmtpFault f = fault(SmtpFault::Phase::Rcpt, "bob@l.test", SmtpFault::Action::Reply);
  f.code = 550;
  f.text = "Mailbox disabled on purpose";
  REQUIRE(r.faults->add(f).ok());
  feed(r.server, "MAIL FROM:<a@r.test>\r\nRCPT TO:<BOB@l.test>\r\nRCPT TO:<bob@l.test>\r\nRCPT TO:<carol@l.test>\r\n");
  CHECK(take_output(r.server) ==
        "250 2.1.0 OK\r\n"
        "550 5.0.0 Mailbox disabled on purpose\r\n"
        "250 2.1.5 OK\r\n"  // once only
        "250 2.1.5 OK\r\n");
  CHECK(r.calls == std::vector<std::string>{"MAIL a@r.test", "RCPT bob@l.test", "RCPT carol@l.test"});
  // At the end of data: refused for a message to carol; the inner session never stores it.
  SmtpFault d = fault(SmtpFault::Phase::Data, "carol@l.test", SmtpFault::Action::Reply);
  d.code = 452;
  REQUIRE(r.faults->add(d).ok());
  feed(r.server, "DATA\r\nhi\r\n.\r\n");
  CHECK(take_output(r.server) == "354 End data with <CR><LF>.<CR><LF>\r\n452 4.0.0 Fault injected on purpose\r\n");
  CHECK(r.calls.back() == "RESET");
  CHECK(std::count(r.calls.begin(), r.calls.end(), "END") == 0);
  feed(r.server, "MAIL FROM:<a@r.test>\r\nRCPT TO:<carol@l.test>\r\nDATA\r\nhi\r\n.\r\n");
  CHECK(take_output(r.server).ends_with("250 2.0.0 Stored\r\n"));
}

TEST_CASE("FaultySmtpSession: a dropped connection, with no reply and nothing stored") {
  SPLIT_SUBCASES();
  Rig r;
  REQUIRE(r.faults->add(fault(SmtpFault::Phase::Data, "", SmtpFault::Action::Disconnect)).ok());
  feed(r.server, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\n");
  CHECK(take_output(r.server) == "250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  CHECK(r.server.closed());
  expect_event<proto::Close>(r.server);
  CHECK(std::count(r.calls.begin(), r.calls.end(), "END") == 0);
  CHECK(r.calls.back() == "RESET");
}

TEST_CASE("FaultySmtpSession: a slow reply is the inner verdict, later; pipelined commands wait for it") {
  SPLIT_SUBCASES();
  Rig r;
  SmtpFault f = fault(SmtpFault::Phase::Mail, "", SmtpFault::Action::Delay);
  f.delay = std::chrono::milliseconds(1500);
  REQUIRE(r.faults->add(f).ok());
  feed(r.server, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\n");
  CHECK(take_output(r.server).empty());  // nothing yet, the RCPT waits behind it
  CHECK(r.calls == std::vector<std::string>{"MAIL a@r.test"});
  r.loop.run_posted();
  CHECK(r.loop.waits() == std::vector<std::chrono::milliseconds>{std::chrono::milliseconds(1500)});
  CHECK(take_output(r.server) == "250 2.1.0 OK\r\n250 2.1.5 OK\r\n");
}

TEST_CASE("FaultySmtpSession: a delayed verdict after the session is gone is dropped") {
  std::vector<std::string> calls;
  auto faults = std::make_shared<backends::SmtpFaults>();
  FakeLoop loop;
  SmtpFault f = fault(SmtpFault::Phase::Mail, "", SmtpFault::Action::Delay);
  REQUIRE(faults->add(f).ok());
  bool completed = false;
  {
    backends::FaultySmtpSession session(faults, loop.executor());
    session.set_inner(std::make_unique<Inner>(&calls));
    session.set_completion([&](smtp::Verdict) { completed = true; });
    smtp::Server server(smtp::ServerOptions{}, session);
    server.receive("EHLO c.test\r\nMAIL FROM:<a@r.test>\r\n");
  }
  loop.run_posted();
  CHECK_FALSE(completed);
}

TEST_CASE("smtp::Server: Verdict::disconnect closes at once; a Session's 421 closes after it") {
  SPLIT_SUBCASES();
  struct S : smtp::Session {
    int resets = 0;
    smtp::Verdict mail(const smtp::SessionInfo&, const smtp::Path& from, const smtp::MailParams&) override {
      if (from.address() == "drop@r.test") return smtp::Verdict::disconnect();
      return smtp::Verdict::accept();
    }
    smtp::Verdict rcpt(const smtp::SessionInfo&, const smtp::Path&, const smtp::RcptParams&) override {
      return smtp::Verdict::reject(smtp::reply(421, {4, 3, 2}, "mx.test Shutting down"));
    }
    void data_chunk(std::string_view) override {}
    smtp::Verdict data_end(const smtp::SessionInfo&) override { return smtp::Verdict::accept(); }
    void reset() override { ++resets; }
  };
  {
    S s;
    smtp::Server server(smtp::ServerOptions{}, s);
    take_output(server);
    feed(server, "EHLO c.test\r\nMAIL FROM:<drop@r.test>\r\nNOOP\r\n");
    CHECK(take_output(server).starts_with("250-"));  // the EHLO reply alone
    CHECK(server.closed());
  }
  {
    S s;
    smtp::Server server(smtp::ServerOptions{}, s);
    take_output(server);
    feed(server, "EHLO c.test\r\n");
    take_output(server);
    feed(server, "MAIL FROM:<a@r.test>\r\nRCPT TO:<b@l.test>\r\nNOOP\r\n");
    CHECK(take_output(server) == "250 2.1.0 OK\r\n421 4.3.2 mx.test Shutting down\r\n");
    CHECK(server.closed());
    CHECK(s.resets == 1);  // the open transaction ended
  }
}
