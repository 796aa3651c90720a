// Delivery outcomes: see cmail/mail/outcome.h.
#include <cmail/mail/outcome.h>

#include <set>

namespace cmail::mail {

RecipientOutcome outcome_of_failure(const Failure& f, const AttemptedRecipient& r, const RetryPolicy& retry,
                                    std::int64_t now) {
  RecipientOutcome o;
  o.record = f.record;
  if (f.fatal) {
    o.kind = RecipientOutcome::Kind::Failed;
    return o;
  }
  o.kind = RecipientOutcome::Kind::Deferred;
  o.next_attempt = next_attempt(retry, r.failures + 1, now);
  o.given_up = given_up(retry, r.failures + 1, r.submission, now);
  return o;
}

RecipientOutcome outcome_of_reply(const smtp::Reply& reply, std::string_view host, bool server_dsn,
                                  const AttemptedRecipient& r, const RetryPolicy& retry, std::int64_t now) {
  RecipientOutcome o;
  if (reply.positive()) {
    o.kind = RecipientOutcome::Kind::Delivered;
    // RFC 3461 5.2.2: a server without DSN cannot report success; we say it was relayed.
    o.relayed = wants_success_report(r.notify) && !server_dsn;
  } else {
    o = outcome_of_failure({failure_from_reply(reply, host), reply.permanent()}, r, retry, now);
  }
  o.reply = reply;
  return o;
}

std::vector<RecipientOutcome> transaction_outcomes(const smtp::client_event::MailResult& result,
                                                   const std::vector<std::optional<smtp::Reply>>& rcpt_replies,
                                                   const std::vector<AttemptedRecipient>& recipients,
                                                   std::string_view host, bool server_dsn, const RetryPolicy& retry,
                                                   std::int64_t now) {
  const std::set<std::size_t> accepted(result.accepted.begin(), result.accepted.end());
  std::vector<RecipientOutcome> out;
  out.reserve(recipients.size());
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    const bool own = !accepted.count(i) && i < rcpt_replies.size() && rcpt_replies[i];
    const smtp::Reply& reply = own ? *rcpt_replies[i] : result.reply;
    out.push_back(outcome_of_reply(reply, host, server_dsn, recipients[i], retry, now));
  }
  return out;
}

Failure refused_before_sending(std::string_view reason, std::string_view host) {
  smtp::EnhancedCode code{5, 6, 3};                                               // RFC 3463 3.7: conversion required
  if (reason.find("SIZE") != std::string_view::npos) code = {5, 3, 4};           // RFC 3463 3.4: too big
  else if (reason.find("SMTPUTF8") != std::string_view::npos) code = {5, 6, 7};  // RFC 6531 3.7.5
  else if (reason.find("REQUIRETLS") != std::string_view::npos) code = {5, 7, 30};  // RFC 8689 4.2.1
  return {failure_local(code, std::string(reason) + " (" + std::string(host) + ")"), true};
}

Failure lost_transaction(const Candidate& c, const std::optional<smtp::Reply>& reply, std::string_view reason) {
  return {reply ? failure_from_reply(*reply, c.host) : failure_local({4, 4, 2}, std::string(reason) + " (" + c.where() + ")"),
          false};
}

std::string unusable_candidate(const Candidate& c, const std::optional<smtp::Reply>& reply, std::string_view reason) {
  return reply ? failure_from_reply(*reply, c.host) : std::string(reason) + " (" + c.where() + ")";
}

}  // namespace cmail::mail
