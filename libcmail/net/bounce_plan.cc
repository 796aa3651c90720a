// Reports to senders: see cmail/net/bounce_plan.h.
#include <cmail/net/bounce_plan.h>

#include <cmail/backends/dkim_signing.h>
#include <cmail/mail/fields.h>
#include <cmail/proto/ascii.h>
#include <cmail/store/routing.h>

#include <map>

namespace cmail::net {

namespace {

// Adds where a report to `address` goes (routing::plan_report); a refusal becomes a note.
void route_report(store::Directory& dir, const std::string& address, store::Delivery& d,
                  std::vector<std::string>& notes) {
  auto planned = store::routing::plan_report(dir, address, d);
  if (!planned) notes.push_back("cannot route the report to <" + address + ">: " + planned.error().to_string());
  else if (!*planned) notes.push_back("the report to local <" + address + "> is refused by its routing; dropped");
}

store::Delivery report_delivery(std::string ident) {
  store::Delivery d;
  d.ident = std::move(ident);
  d.protocol = "local";
  return d;  // envelope_from stays nullopt: reports go with the null sender (RFC 5321 4.5.5)
}

}  // namespace

std::vector<BounceGroup> plan_bounces(std::vector<store::QueueEntry> given_up) {
  // One bounce per message and sender, not per recipient (docs/compatibility.md).
  std::map<std::string, BounceGroup> groups;
  for (auto& e : given_up) {
    auto& g = groups[message_key(e)];
    g.entries.push_back(std::move(e));
  }
  std::vector<BounceGroup> out;
  out.reserve(groups.size());
  for (auto& [key, g] : groups) {
    if (null_sender(g.entries.front())) {
      g.dropped = "it has the null sender";  // RFC 5321 6.1: never a bounce for a bounce
    } else {
      for (std::size_t i = 0; i < g.entries.size(); ++i)
        if (mail::wants_failure_report(g.entries[i].dsn.notify)) g.reported.push_back(i);  // RFC 3461 4.1
      if (g.reported.empty()) g.dropped = "the sender asked for no report";
    }
    out.push_back(std::move(g));
  }
  return out;
}

mail::Bounce report_about(const store::QueueEntry& e, const ReportOptions& o, std::int64_t now,
                          const std::string& message_id) {
  mail::Bounce b;
  b.reporting_mta = o.reporting_mta;
  b.from = o.from;
  b.to = e.envelope_from.value_or("");
  b.queue_id = e.queue_id;
  b.arrival = e.submission;
  b.envid = e.dsn_envid;
  b.now = now;
  b.message_id = message_id;
  return b;
}

mail::BouncedRecipient bounced_recipient(const store::QueueEntry& e, const std::vector<store::QueueFailure>& failures) {
  mail::BouncedRecipient r;
  r.address = e.envelope_to;
  r.orcpt = e.dsn.orcpt;
  if (!failures.empty()) {
    r.last = mail::parse_failure(failures.back().message, failures.back().fatal);
    r.last_attempt = failures.back().time;
    r.attempts = static_cast<std::int64_t>(failures.size());
  } else {
    r.last = mail::parse_failure("no attempt could be made", e.fatal);
  }
  r.expired = !e.fatal && r.last.status.klass != 5;  // RFC 3463 4.4.7
  return r;
}

namespace {

// The server's own reports are DKIM-signed like its users' mail, with the keys of their From
// domain (`bounce_from`, or the announce name's; cmail/backends/dkim_signing.h).
std::string signed_report(store::Directory& dir, std::string message, std::int64_t now, std::vector<std::string>& notes) {
  std::string errors;
  std::string fields = backends::dkim_fields(dir, message, now, errors);
  if (!errors.empty()) notes.push_back("report not DKIM-signed: " + errors);
  return fields + message;
}

}  // namespace

store::Delivery bounce_delivery(const BounceGroup& g, const std::vector<std::vector<store::QueueFailure>>& failures,
                                std::string_view original, const ReportOptions& o, std::int64_t now, std::string ident,
                                store::Directory& dir, std::vector<std::string>& notes) {
  store::Delivery d = report_delivery(std::move(ident));
  d.replaces_owner = o.owner;
  for (const auto& e : g.entries) d.replaces.push_back(e.id);
  if (g.entries.empty()) return d;
  const store::QueueEntry& first = g.entries.front();
  if (g.reported.empty()) {
    notes.push_back("dropped " + first.queue_id + " for " + std::to_string(g.entries.size()) +
                    " recipient(s) after failure: " + g.dropped);
    return d;
  }
  mail::Bounce b = report_about(first, o, now, d.ident);
  b.return_full = first.dsn_ret && proto::ascii_lower(*first.dsn_ret) == "full";  // RFC 3461 4.3
  static const std::vector<store::QueueFailure> none;
  for (std::size_t k = 0; k < g.reported.size(); ++k)
    b.recipients.push_back(bounced_recipient(g.entries[g.reported[k]], k < failures.size() ? failures[k] : none));
  d.data = signed_report(dir, mail::compose_bounce(b, original), now, notes);
  // RFC 8689 5: the bounce of a REQUIRETLS message carries the original's header: REQUIRETLS too.
  if (first.tls_required == store::TlsRequired::Yes) d.tls_required = store::TlsRequired::Yes;
  route_report(dir, b.to, d, notes);
  for (const auto& copy : o.copies) route_report(dir, copy, d, notes);
  return d;
}

std::optional<store::Delivery> relay_report(const std::vector<std::pair<store::QueueEntry, smtp::Reply>>& relayed,
                                            std::string_view host, std::string_view original, const ReportOptions& o,
                                            std::int64_t now, std::string ident, store::Directory& dir,
                                            std::vector<std::string>& notes) {
  if (relayed.empty() || null_sender(relayed.front().first)) return std::nullopt;  // nobody to tell
  store::Delivery d = report_delivery(std::move(ident));
  mail::Bounce b = report_about(relayed.front().first, o, now, d.ident);
  for (const auto& [e, reply] : relayed) {
    mail::BouncedRecipient r;
    r.address = e.envelope_to;
    r.orcpt = e.dsn.orcpt;
    r.action = "relayed";  // RFC 3464 2.3.3, RFC 3461 5.2.2
    r.last = mail::parse_failure(mail::failure_from_reply(reply, host), false);
    r.last_attempt = now;
    r.attempts = e.failures + 1;
    b.recipients.push_back(std::move(r));
  }
  d.data = signed_report(dir, mail::compose_bounce(b, original), now, notes);
  if (relayed.front().first.tls_required == store::TlsRequired::Yes) d.tls_required = store::TlsRequired::Yes;  // RFC 8689 5
  route_report(dir, b.to, d, notes);
  if (d.local.empty() && d.queued.empty()) return std::nullopt;
  return d;
}

BounceRun return_given_up(store::Store& st, const ReportOptions& o, const mail::RetryPolicy& retry,
                          std::int64_t lease_seconds, std::int64_t now, std::size_t max) {
  BounceRun out;
  store::Queue& q = st.queue();
  auto leased = q.lease_given_up(o.owner, now, max, lease_seconds, retry.retries, retry.max_age);
  if (!leased) {
    out.notes.push_back("cannot look for mail to return: " + leased.error().to_string());
    return out;
  }
  out.leased = leased->size();
  for (const BounceGroup& g : plan_bounces(std::move(*leased))) {
    // What the report needs from the queue: the faillog rows and the original.
    std::vector<std::vector<store::QueueFailure>> failures;
    std::string original;
    if (!g.reported.empty()) {
      for (std::size_t i : g.reported) {
        auto f = q.failures(g.entries[i].id);
        failures.push_back(f ? std::move(*f) : std::vector<store::QueueFailure>{});
      }
      if (auto data = q.message_data(g.entries.front().id)) original = std::move(*data);
    }
    store::Delivery d = bounce_delivery(g, failures, original, o, now, mail::new_queue_id(), st.directory(), out.notes);
    const store::QueueEntry& first = g.entries.front();
    Status s = st.deliver_sync(d);
    if (!s.ok()) {
      out.notes.push_back("cannot return " + first.queue_id + ": " + s.to_string());
      for (const auto& e : g.entries) (void)q.release(e.id, o.owner);
    } else if (!d.local.empty() || !d.queued.empty()) {
      ++out.bounces;
      out.notes.push_back("returned " + first.queue_id + " to <" + first.envelope_from.value_or("") + "> (" +
                          std::to_string(g.reported.size()) + " recipient(s)) as " + d.ident);
    }
  }
  return out;
}

std::vector<std::string> store_relay_report(store::Store& st,
                                            const std::vector<std::pair<store::QueueEntry, smtp::Reply>>& relayed,
                                            std::string_view host, std::string_view original, const ReportOptions& o,
                                            std::int64_t now) {
  std::vector<std::string> notes;
  auto d = relay_report(relayed, host, original, o, now, mail::new_queue_id(), st.directory(), notes);
  if (!d) return notes;
  const store::QueueEntry& e0 = relayed.front().first;
  Status s = st.deliver_sync(*d);
  notes.push_back(s.ok() ? "reported relay of " + e0.queue_id + " to <" + e0.envelope_from.value_or("") + "> as " + d->ident
                         : "cannot report relay of " + e0.queue_id + ": " + s.to_string());
  return notes;
}

}  // namespace cmail::net
