// Delivery outcomes (cmail/mail/outcome.h): the client's results per recipient.
#include <cmail/mail/outcome.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::mail;
using Kind = RecipientOutcome::Kind;

namespace {

constexpr std::int64_t kNow = 1'000'000;

RetryPolicy policy() {
  RetryPolicy p;
  p.interval = 60;
  p.max_interval = 600;
  p.retries = 3;
  p.max_age = 86400;
  return p;
}

AttemptedRecipient fresh(std::optional<std::string> notify = std::nullopt) { return {0, kNow - 10, std::move(notify)}; }

smtp::Reply R(int code, smtp::EnhancedCode e, const char* text) { return smtp::reply(code, e, text); }

const Candidate kMx{"mx.example.org", "192.0.2.1", {25, TlsMode::Opportunistic}, false, std::nullopt};

}  // namespace

TEST_CASE("outcome: one reply, by class") {
  struct Case {
    smtp::Reply reply;
    Kind kind;
    const char* record;
    std::int64_t next;
  };
  const Case cases[] = {
      {R(250, {2, 0, 0}, "OK"), Kind::Delivered, "", 0},
      {R(251, {2, 1, 5}, "forwarded"), Kind::Delivered, "", 0},
      {R(450, {4, 2, 0}, "mailbox busy"), Kind::Deferred, "450 4.2.0 mailbox busy (from mx.example.org)", kNow + 60},
      {R(421, {4, 3, 2}, "shutting down"), Kind::Deferred, "421 4.3.2 shutting down (from mx.example.org)", kNow + 60},
      {R(550, {5, 1, 1}, "no such user"), Kind::Failed, "550 5.1.1 no such user (from mx.example.org)", 0},
      {R(554, {5, 7, 1}, "rejected"), Kind::Failed, "554 5.7.1 rejected (from mx.example.org)", 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.reply.summary());
    auto o = outcome_of_reply(c.reply, "mx.example.org", false, fresh(), policy(), kNow);
    CHECK(o.kind == c.kind);
    CHECK(o.record == c.record);
    CHECK(o.next_attempt == c.next);
    CHECK_FALSE(o.given_up);
    CHECK_FALSE(o.relayed);
    REQUIRE(o.reply);
    CHECK(o.reply->code == c.reply.code);
  }
}

TEST_CASE("outcome: relayed for NOTIFY=SUCCESS only to a server without DSN (RFC 3461 5.2.2)") {
  struct Case {
    std::optional<std::string> notify;
    bool server_dsn;
    bool relayed;
  };
  const Case cases[] = {
      {std::nullopt, false, false},         // never by default
      {"SUCCESS", false, true},
      {"failure,success", false, true},     // any case, in a list
      {"SUCCESS", true, false},             // the server reports itself
      {"FAILURE,DELAY", false, false},
      {"NEVER", false, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.notify.value_or("(none)"));
    CAPTURE(c.server_dsn);
    auto o = outcome_of_reply(R(250, {2, 0, 0}, "OK"), "mx", c.server_dsn, fresh(c.notify), policy(), kNow);
    CHECK(o.kind == Kind::Delivered);
    CHECK(o.relayed == c.relayed);
  }
  // A refused recipient is never "relayed".
  auto refused = outcome_of_reply(R(550, {5, 1, 1}, "no"), "mx", false, fresh("SUCCESS"), policy(), kNow);
  CHECK_FALSE(refused.relayed);
}

TEST_CASE("outcome: a transaction, step by step") {
  const std::vector<AttemptedRecipient> three = {fresh(), fresh(), fresh()};
  auto kinds = [](const std::vector<RecipientOutcome>& os) {
    std::vector<Kind> k;
    for (const auto& o : os) k.push_back(o.kind);
    return k;
  };

  SUBCASE("all accepted, 250 after DATA: delivered") {
    smtp::client_event::MailResult r{R(250, {2, 0, 0}, "queued"), {0, 1, 2}};
    auto os = transaction_outcomes(r, {R(250, {2, 1, 5}, "ok"), R(250, {2, 1, 5}, "ok"), R(250, {2, 1, 5}, "ok")},
                                   three, "mx", false, policy(), kNow);
    CHECK(kinds(os) == std::vector<Kind>{Kind::Delivered, Kind::Delivered, Kind::Delivered});
    CHECK(os[0].reply->summary() == "250 2.0.0 queued");  // the final reply, not the RCPT one
  }
  SUBCASE("RCPT refused for some: each keeps its own reply") {
    smtp::client_event::MailResult r{R(250, {2, 0, 0}, "queued"), {1}};
    auto os = transaction_outcomes(r, {R(550, {5, 1, 1}, "unknown"), R(250, {2, 1, 5}, "ok"), R(452, {4, 5, 3}, "too many")},
                                   three, "mx", false, policy(), kNow);
    CHECK(kinds(os) == std::vector<Kind>{Kind::Failed, Kind::Delivered, Kind::Deferred});
    CHECK(os[0].record == "550 5.1.1 unknown (from mx)");
    CHECK(os[2].record == "452 4.5.3 too many (from mx)");
    CHECK(os[2].next_attempt == kNow + 60);
  }
  SUBCASE("4xx or 5xx after DATA: every accepted recipient shares it") {
    for (const auto& c : {std::pair{R(451, {4, 3, 0}, "try later"), Kind::Deferred},
                          std::pair{R(554, {5, 6, 0}, "content rejected"), Kind::Failed}}) {
      const smtp::Reply& final_reply = c.first;  // not a structured binding: clang 14 cannot capture those
      const Kind kind = c.second;
      CAPTURE(final_reply.summary());
      smtp::client_event::MailResult r{final_reply, {0, 2}};
      auto os = transaction_outcomes(r, {R(250, {2, 1, 5}, "ok"), R(550, {5, 1, 1}, "unknown"), R(250, {2, 1, 5}, "ok")},
                                     three, "mx", false, policy(), kNow);
      CHECK(kinds(os) == std::vector<Kind>{kind, Kind::Failed, kind});
      CHECK(os[0].record == final_reply.summary() + " (from mx)");
      CHECK(os[1].record == "550 5.1.1 unknown (from mx)");
    }
  }
  SUBCASE("MAIL refused: nobody accepted, no RCPT reply; the MAIL reply for all") {
    for (const auto& c : {std::pair{R(451, {4, 7, 1}, "greylisted"), Kind::Deferred},
                          std::pair{R(553, {5, 1, 8}, "bad sender"), Kind::Failed}}) {
      const smtp::Reply& mail_reply = c.first;
      const Kind kind = c.second;
      CAPTURE(mail_reply.summary());
      smtp::client_event::MailResult r{mail_reply, {}};
      auto os = transaction_outcomes(r, {std::nullopt, std::nullopt, std::nullopt}, three, "mx", false, policy(), kNow);
      CHECK(kinds(os) == std::vector<Kind>{kind, kind, kind});
      for (const auto& o : os) CHECK(o.record == mail_reply.summary() + " (from mx)");
    }
  }
  SUBCASE("fewer RCPT replies than recipients: the final reply for the rest") {
    smtp::client_event::MailResult r{R(421, {4, 4, 2}, "closing"), {}};
    auto os = transaction_outcomes(r, {R(550, {5, 1, 1}, "unknown")}, three, "mx", false, policy(), kNow);
    CHECK(kinds(os) == std::vector<Kind>{Kind::Failed, Kind::Deferred, Kind::Deferred});
  }
}

TEST_CASE("outcome: failures found here, and the retry schedule") {
  const Failure temp{"4.4.3 DNS lookup of the MX of example.org failed: timeout", false};
  const Failure perm{"5.1.2 Failed to resolve recipient domain: example.org does not exist", true};

  auto p = outcome_of_failure(perm, fresh(), policy(), kNow);
  CHECK(p.kind == Kind::Failed);
  CHECK(p.record == perm.record);
  CHECK(p.next_attempt == 0);
  CHECK_FALSE(p.reply);

  struct Case {
    std::int64_t failures_before;
    std::int64_t queued_for;
    std::int64_t next;
    bool given_up;
  };
  const Case cases[] = {
      {0, 10, kNow + 60, false},     // the first failure: retryinterval
      {1, 10, kNow + 120, false},    // doubled
      {2, 10, kNow + 240, true},     // the third failure uses up retries = 3
      {7, 10, kNow + 600, true},     // capped at max_interval
      {0, 86400, kNow + 60, true},   // queued for max_age: given up at its first failure
      {0, 86399, kNow + 60, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.failures_before);
    CAPTURE(c.queued_for);
    auto o = outcome_of_failure(temp, {c.failures_before, kNow - c.queued_for, std::nullopt}, policy(), kNow);
    CHECK(o.kind == Kind::Deferred);
    CHECK(o.record == temp.record);
    CHECK(o.next_attempt == c.next);
    CHECK(o.given_up == c.given_up);
  }
  // The same schedule for a server's 4xx.
  auto late = outcome_of_reply(R(451, {4, 3, 0}, "later"), "mx", false, {2, kNow, std::nullopt}, policy(), kNow);
  CHECK(late.kind == Kind::Deferred);
  CHECK(late.next_attempt == kNow + 240);
  CHECK(late.given_up);
}

TEST_CASE("outcome: checks refused before sending are permanent, with RFC 3463 codes") {
  struct Case {
    const char* reason;
    const char* record;
  };
  const Case cases[] = {
      {"message exceeds the server's SIZE limit of 1000", "5.3.4 message exceeds the server's SIZE limit of 1000 (mx)"},
      {"the server does not offer SMTPUTF8", "5.6.7 the server does not offer SMTPUTF8 (mx)"},
      {"the server does not offer 8BITMIME", "5.6.3 the server does not offer 8BITMIME (mx)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.reason);
    CHECK(refused_before_sending(c.reason, "mx") == Failure{c.record, true});
  }
  // ... and so for every recipient of the message, whatever their failures so far.
  auto o = outcome_of_failure(refused_before_sending("SIZE", "mx"), {4, kNow, std::nullopt}, policy(), kNow);
  CHECK(o.kind == Kind::Failed);
}

TEST_CASE("outcome: connection failures") {
  // During a transaction: temporary, even after a 5xx (nothing was acknowledged).
  CHECK(lost_transaction(kMx, std::nullopt, "connection closed") ==
        Failure{"4.4.2 connection closed (mx.example.org [192.0.2.1]:25)", false});
  CHECK(lost_transaction(kMx, R(421, {4, 4, 2}, "idle too long"), "closed") ==
        Failure{"421 4.4.2 idle too long (from mx.example.org)", false});
  CHECK(lost_transaction(kMx, R(554, {5, 5, 0}, "unexpected"), "protocol") ==
        Failure{"554 5.5.0 unexpected (from mx.example.org)", false});
  auto o = outcome_of_failure(lost_transaction(kMx, std::nullopt, "timeout"), fresh(), policy(), kNow);
  CHECK(o.kind == Kind::Deferred);
  CHECK(o.next_attempt == kNow + 60);

  // Before a transaction: the candidate's error, which unreachable() turns into a temporary
  // failure once every candidate failed (route_test.cc).
  CHECK(unusable_candidate(kMx, std::nullopt, "connection refused") == "connection refused (mx.example.org [192.0.2.1]:25)");
  CHECK(unusable_candidate(kMx, R(554, {5, 7, 1}, "not you"), "greeting refused") == "554 5.7.1 not you (from mx.example.org)");
  auto t = route_target(std::nullopt, "x@example.org");
  REQUIRE(std::holds_alternative<RouteTarget>(t));
  auto all = outcome_of_failure(unreachable(std::get<RouteTarget>(t), unusable_candidate(kMx, R(554, {5, 7, 1}, "not you"), "")),
                                fresh(), policy(), kNow);
  CHECK(all.kind == Kind::Deferred);  // a refused server is no failure of the message
  CHECK(all.record == "4.4.1 Failed to reach any MX: 554 5.7.1 not you (from mx.example.org)");
}
