// cmail-admin queue: look at and steer the delivery queue (outbox + faillog).
#include "commands.h"

#include <cmail/store/queue.h>

#include <charconv>
#include <cstdio>

namespace cmail::admin {

void usage_queue() {
  std::printf(
      "cmail-admin-queue - Look at and steer the delivery queue\n"
      "Usage: cmail-admin queue [-d DBPATH] [--no-upgrade] COMMAND [ARGS]\n"
      "  list              every queued recipient with its attempts\n"
      "  show ID           one entry, its failures and its message headers\n"
      "  retry [ID]        make one entry (or all) due at once\n"
      "  flush             the same as retry for all entries\n"
      "  delete ID         remove an entry without delivering it\n");
}

int run_queue(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  const bool known = cmd == "list" || cmd == "show" || cmd == "retry" || cmd == "flush" || cmd == "delete";
  if (!known) {
    ctx.fail(20, "Unknown command " + cmd);
    usage_queue();
    return 20;
  }
  std::optional<std::int64_t> id;
  if (a.size() > 1) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(a[1].data(), a[1].data() + a[1].size(), v);
    if (ec != std::errc() || p != a[1].data() + a[1].size()) return ctx.fail(kExitInvalid, "'" + a[1] + "' is not a queue id");
    id = v;
  }
  if ((cmd == "show" || cmd == "delete") && (!id || a.size() != 2)) return ctx.fail(kExitArgs, "usage: " + cmd + " ID");
  if ((cmd == "list" || cmd == "flush") && a.size() != 1) return ctx.fail(kExitArgs, "usage: " + cmd);
  if (cmd == "retry" && a.size() > 2) return ctx.fail(kExitArgs, "usage: retry [ID]");
  int code = 0;
  auto store = ctx.open(cmd == "list" || cmd == "show", code);
  if (!store) return code;
  store::Queue& q = store->queue();
  q.wake();  // a running dispatcher looks at the queue at once (flush, retry and delete also change it)
  if (cmd == "list") {
    auto entries = q.list();
    if (!entries) return ctx.fail(entries.error());
    std::printf("%6s | %16s | %25s | %25s | %20s | %8s | %s\n", "Id", "Queue id", "From", "To", "Remote", "Failures",
                "Next attempt");
    std::printf("-------+------------------+---------------------------+---------------------------+----------------------+----------+-------------\n");
    for (const store::QueueEntry& e : *entries)
      std::printf("%6lld | %16s | %25s | %25s | %20s | %7lld%s | %lld\n", static_cast<long long>(e.id),
                  e.queue_id.c_str(), e.envelope_from ? e.envelope_from->c_str() : "<>", e.envelope_to.c_str(),
                  e.remote.value_or("(MX)").c_str(), static_cast<long long>(e.failures), e.fatal ? "!" : " ",
                  static_cast<long long>(e.next_attempt));
    return kExitOk;
  }
  if (cmd == "show") {
    auto e = q.find(*id);
    if (!e) return ctx.fail(e.error());
    if (!*e) return ctx.fail(kExitNotFound, "no queue entry " + a[1]);
    auto failures = q.failures(*id);
    auto data = q.message_data(*id);
    if (!failures || !data) return ctx.fail(!failures ? failures.error() : data.error());
    std::printf("Id: %lld\nQueue id: %s\nFrom: %s\nTo: %s\nRemote: %s\nSize: %lld\nNext attempt: %lld\n",
                static_cast<long long>((*e)->id), (*e)->queue_id.c_str(),
                (*e)->envelope_from ? (*e)->envelope_from->c_str() : "<>", (*e)->envelope_to.c_str(),
                (*e)->remote.value_or("(MX)").c_str(), static_cast<long long>((*e)->size),
                static_cast<long long>((*e)->next_attempt));
    for (const store::QueueFailure& f : *failures)
      std::printf("Attempt at %lld (%s): %s\n", static_cast<long long>(f.time), f.fatal ? "permanent" : "temporary",
                  f.message.c_str());
    std::string headers = data->substr(0, data->find("\r\n\r\n"));
    std::printf("\n%s\n", headers.c_str());
    return kExitOk;
  }
  if (cmd == "delete") {
    Status st = q.remove(*id);
    if (st.is_not_found()) return ctx.fail(kExitNotFound, "no queue entry " + a[1]);
    return st.ok() ? kExitOk : ctx.fail(st);
  }
  // retry / flush: due at once (a running dispatcher notices at its next scan).
  auto changed = q.retry_now(cmd == "flush" ? std::nullopt : id);
  if (!changed) return ctx.fail(changed.error());
  if (id && *changed == 0) {
    auto e = q.find(*id);
    if (e && !*e) return ctx.fail(kExitNotFound, "no queue entry " + a[1]);
  }
  std::printf("%lld entr%s due now\n", static_cast<long long>(*changed), *changed == 1 ? "y" : "ies");
  return kExitOk;
}

}  // namespace cmail::admin
