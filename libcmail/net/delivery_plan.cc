// Queue entries to transactions, outcomes to queue outcomes: see cmail/net/delivery_plan.h.
#include <cmail/net/delivery_plan.h>

#include <map>

namespace cmail::net {

std::string message_key(const store::QueueEntry& e) {
  return (e.queue_id.empty() ? "#" + std::to_string(e.id) : e.queue_id) + '\x1f' +
         (e.envelope_from ? "<" + *e.envelope_from + ">" : "null");
}

bool null_sender(const store::QueueEntry& e) { return !e.envelope_from || e.envelope_from->empty(); }

TransactionPlan plan_transactions(std::vector<store::QueueEntry> leased, std::size_t max_recipients) {
  TransactionPlan plan;
  std::map<std::string, std::size_t> dest_index;  // by RouteTarget::key
  // Per destination, by message key: the transaction still taking recipients.
  std::vector<std::map<std::string, std::size_t>> open;
  for (store::QueueEntry& e : leased) {
    auto target = mail::route_target(e.remote, e.envelope_to);
    if (auto* f = std::get_if<mail::Failure>(&target)) {
      plan.failed.emplace_back(std::move(e), std::move(*f));
      continue;
    }
    auto& t = std::get<mail::RouteTarget>(target);
    auto [it, fresh] = dest_index.emplace(t.key, plan.destinations.size());
    if (fresh) {
      plan.destinations.push_back({std::move(t), {}});
      open.emplace_back();
    }
    DestinationPlan& d = plan.destinations[it->second];
    auto [slot, first] = open[it->second].emplace(message_key(e), d.transactions.size());
    if (first || d.transactions[slot->second].rcpts.size() >= max_recipients) {
      slot->second = d.transactions.size();
      d.transactions.push_back({e.envelope_from, {}});
    }
    d.transactions[slot->second].rcpts.push_back(std::move(e));
  }
  return plan;
}

smtp::Envelope envelope_of(const Transaction& t) {
  smtp::Envelope env;
  env.from = smtp::Path::from_address(t.from.value_or(""));
  if (!t.rcpts.empty()) {
    env.params.ret = t.rcpts.front().dsn_ret;      // RFC 3461 4.3
    env.params.envid = t.rcpts.front().dsn_envid;  // RFC 3461 4.4
    env.params.requiretls = t.rcpts.front().tls_required == store::TlsRequired::Yes;  // RFC 8689 4.2.1 step 6
  }
  for (const auto& r : t.rcpts)
    env.recipients.push_back({smtp::Path::from_address(r.envelope_to), {r.dsn.notify, r.dsn.orcpt}});  // RFC 3461 4.1, 4.2
  return env;
}

mail::AttemptedRecipient attempted(const store::QueueEntry& e) { return {e.failures, e.submission, e.dsn.notify}; }

store::QueueOutcome queue_outcome(std::int64_t id, const mail::RecipientOutcome& o) {
  using K = mail::RecipientOutcome::Kind;
  if (o.kind == K::Delivered) return {id, store::QueueOutcome::Kind::Delivered, "", false, 0};
  return {id, store::QueueOutcome::Kind::Failed, o.record, o.kind == K::Failed, o.kind == K::Failed ? 0 : o.next_attempt};
}

}  // namespace cmail::net
