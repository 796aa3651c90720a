// The dispatcher: queue -> DNS -> SMTP client -> remote. See cmail/net/dispatcher.h.
//
// The decisions are plain functions elsewhere; this file runs them on the loop:
//   cmail/mail/route.h         a destination's lookups and its candidates, or a DNS failure
//   cmail/mail/outcome.h       the client's results (and failures found here) per recipient
//   cmail/net/delivery_plan.h  leased entries -> transactions; outcomes -> queue outcomes
//   cmail/net/bounce_plan.h    which given-up entries are reported, the report, its Delivery
// Pieces, all on the loop thread:
//   Core         leases due entries, groups them into Destinations and Messages, settles
//                outcomes, runs bounce generation, owns the timers and the notify watch.
//   Destination  one domain (MX delivery) or one handoff remote: its route (the candidates, in
//                the order to try), its pending Messages, its Attempts, its rate window.
//   Attempt      one outbound connection: an smtp::Client behind a net::Handler; takes Messages
//                from its Destination while it is Ready.
// Store calls that block (leasing, reading a message, bounces) run on the runtime's thread pool
// and post their results back; settling is asynchronous on the Store's writer. Every callback
// that may outlive the Dispatcher holds a weak_ptr to the Core.
#include <cmail/net/dispatcher.h>

#include "dane_route.h"
#include "loop.h"

#include <cmail/backends/log_line.h>
#include <cmail/mail/outcome.h>
#include <cmail/mail/requiretls.h>
#include <cmail/mail/mta_sts.h>
#include <cmail/mail/route.h>
#include <cmail/net/bounce_plan.h>
#include <cmail/net/delivery_plan.h>
#include <cmail/net/mta_sts.h>
#include <cmail/net/runtime.h>
#include <cmail/net/tls.h>
#include <cmail/proto/ascii.h>
#include <cmail/smtp/client.h>
#include <cmail/store/process.h>
#include <cmail/store/queue.h>

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

namespace cmail::net {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The relay= of the delivery lines (docs/logging.md): "mx.example.org[192.0.2.1]:25".
std::string relay_of(const mail::Candidate& c) {
  return c.host + "[" + c.address + "]:" + std::to_string(c.port.port);
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One transaction (cmail/net/delivery_plan.h) and its message data, loaded once.
struct Message : Transaction {
  explicit Message(Transaction t) : Transaction(std::move(t)) {}
  enum class Data { None, Loading, Ready, Failed } data_state = Data::None;
  std::shared_ptr<const std::string> data;
  std::string data_error;
  std::function<void()> on_data;  // the attempt waiting for the data
};

struct Destination;

}  // namespace

struct Dispatcher::Core : std::enable_shared_from_this<Dispatcher::Core> {
  Core(net::Runtime& r, store::Store& s, mail::Resolver& res, DispatcherOptions opt)
      : rt(r), store(s), queue(s.queue()), resolver(res), o(std::move(opt)), rng(std::random_device{}()) {
    route_options = {o.portprio, o.announce, o.bind, o.verify};
    report_options = {o.announce, o.bounce_from, o.bounce_copy, o.owner};
  }

  net::Runtime& rt;
  store::Store& store;
  store::Queue& queue;
  mail::Resolver& resolver;
  DispatcherOptions o;
  mail::RouteOptions route_options;     // from o
  net::ReportOptions report_options;    // from o
  std::shared_ptr<TlsClientContext> tls_loose, tls_strict;
  std::unique_ptr<MtaSts> mta_sts;  // MTA-STS policies (RFC 8461); null when off
  std::shared_ptr<TlsClientContext> tls_testing;  // MTA-STS testing: verified, never refused
  std::mt19937 rng;
  proto::Executor ex;

  std::map<std::string, std::shared_ptr<Destination>> dests;
  // Per destination, when messages went out in the last minute (outlives the Destinations).
  std::map<std::string, std::shared_ptr<std::deque<SteadyClock::time_point>>> rate_windows;
  std::size_t connections = 0;      // attempts alive
  std::size_t inflight = 0;         // leased entries not yet settled
  std::size_t pending_settles = 0;  // settle jobs not yet committed
  static constexpr std::size_t kMaxInflight = 5000;
  static constexpr std::size_t kBounceBatch = 200;  // entries a bounce run leases at most
  bool scanning = false, rescan = false, capacity_limited = false;
  bool bouncing = false, bounce_again = false;
  bool daemon = false, stopped = false;
  std::function<void(Status)> one_shot_done;
  DispatcherStats stats;

  // libuv handles, freed in their close callbacks (they may outlive the Core by a loop turn).
  uv_timer_t* wake = nullptr;
  uv_timer_t* renew = nullptr;
  uv_timer_t* bounce_timer = nullptr;
  uv_fs_event_t* watch = nullptr;

  void log(int level, const std::string& line) const {
    if (o.log) o.log(level, line);
  }
  std::weak_ptr<Core> weak() { return shared_from_this(); }
  // Runs `work` on the pool, then `then` on the loop if the Core still exists.
  template <typename R>
  void blocking(std::function<R()> work, std::function<void(Core&, R)> then);

  void start();
  bool watch_notify();
  void stop();
  void schedule_scan();
  void scan();
  void add_entries(std::vector<store::QueueEntry> entries);
  void pump();
  void settle(std::vector<store::QueueOutcome> outcomes);
  void settle(const std::vector<store::QueueEntry>& rcpts, const std::vector<mail::RecipientOutcome>& outcomes);
  void fail_message(const std::vector<store::QueueEntry>& rcpts, const mail::Failure& f);
  void schedule_bounces();
  void bounces();
  void report_relayed(std::shared_ptr<const std::string> data, std::vector<std::pair<store::QueueEntry, smtp::Reply>> rcpts,
                      std::string host);
  void release_dead_owners();
  void arm_wake(std::optional<std::int64_t> next_due, std::int64_t now);
  void maybe_finish();
  void one_shot(std::function<bool(const store::QueueEntry&)> pick, std::function<void(Status)> done);
};

namespace {

using Core = Dispatcher::Core;
struct Attempt;

struct Destination : std::enable_shared_from_this<Destination> {
  mail::RouteTarget target;
  std::deque<std::shared_ptr<Message>> pending;
  enum class Route { None, Resolving, Ready } route = Route::None;
  std::vector<mail::Candidate> candidates;
  std::size_t cursor = 0;  // the candidate new attempts use
  std::string last_error;
  std::set<Attempt*> attempts;
  std::size_t connecting = 0;  // attempts not yet Ready
  std::shared_ptr<std::deque<SteadyClock::time_point>> sent;  // ratelimit window, kept by the Core
  // DANE (RFC 7672, dane_route.h): whether the MX answer was DNSSEC-validated, and what the
  // TLSA records ask of each candidate.
  bool mx_secure = false;
  DaneRoute dane;
  bool sts_enforce = false;  // MTA-STS enforce: the candidates need TLS with a valid certificate
  bool sts_testing = false;  // MTA-STS testing: what enforce would refuse is logged
  bool tls_optional = false;  // "TLS-Required: No" mail (RFC 8689 5): no MTA-STS

  bool idle() const { return pending.empty() && attempts.empty() && route != Route::Resolving; }
  void resolve(Core& core);
  void lookup(Core& core, mail::HostPlan plan);
  void mta_sts(Core& core, mail::HostPlan plan);
  void routed(Core& core, std::vector<mail::Candidate> c);
  void fail_all(Core& core, const mail::Failure& f);
  bool rate_ok(const Core& core) {
    if (!core.o.ratelimit) return true;
    auto horizon = SteadyClock::now() - std::chrono::minutes(1);
    while (!sent->empty() && sent->front() < horizon) sent->pop_front();
    return sent->size() < core.o.ratelimit;
  }
  void throttle(Core& core);
  void open_attempt(Core& core);
};

// One connection.
struct Attempt : std::enable_shared_from_this<Attempt> {
  enum class State { Connecting, Greeting, Idle, Loading, Sending, Quitting, Done };
  std::weak_ptr<Core> core;
  std::shared_ptr<Destination> dest;
  std::size_t index = 0;  // candidate
  mail::Candidate cand;
  smtp::Client client;
  net::Kick kick;
  State state = State::Connecting;
  bool counted = true;  // still in dest->connecting
  std::shared_ptr<Message> current;
  std::vector<std::optional<smtp::Reply>> rcpt_replies;
  std::size_t sent = 0;

  Attempt(std::weak_ptr<Core> c, std::shared_ptr<Destination> d, std::size_t i, const smtp::ClientOptions& co)
      : core(std::move(c)), dest(std::move(d)), index(i), cand(dest->candidates[i]), client(co) {}

  void uncount() {
    if (counted) --dest->connecting, counted = false;
  }
  void pump();
  void next(Core& c);
  static void load(Core& c, const std::shared_ptr<Message>& m);  // reads the data once, on the pool
  void send(Core& c);
  void finish_message(Core& c, const smtp::client_event::MailResult& r);
  void failed(const std::string& reason, const std::optional<smtp::Reply>& reply);
  void closed(const std::string& reason);
};

// The engine verbs, forwarded to the client; after each call that can produce results, the
// attempt acts on them (send the next message, settle, give up).
class AttemptHandler final : public net::Handler {
 public:
  explicit AttemptHandler(std::shared_ptr<Attempt> a) : a_(std::move(a)) {}
  void receive(std::string_view b) override { a_->client.receive(b), a_->pump(); }
  void receive_eof() override { a_->client.receive_eof(), a_->pump(); }
  std::string_view pending_output() const override { return a_->client.pending_output(); }
  void consume_output(std::size_t n) override { a_->client.consume_output(n); }
  std::optional<proto::Event> next_event() override { return a_->client.next_event(); }
  void tls_established(const proto::TlsInfo& i) override {
    // MTA-STS hook: in testing mode, a certificate enforce would refuse is logged (RFC 8461 5).
    if (a_->dest->sts_testing && !i.verify_error.empty())
      if (auto c = a_->core.lock())
        c->log(1, "MTA-STS testing: the certificate of " + a_->cand.host + " is not valid for it (" + i.verify_error + ")");
    a_->client.tls_established(i), a_->pump();
  }
  void timed_out() override { a_->client.timed_out(), a_->pump(); }
  bool wants_read() const override { return a_->client.wants_read(); }
  std::chrono::milliseconds timeout() const override { return a_->client.timeout(); }

 private:
  std::shared_ptr<Attempt> a_;
};

void Attempt::pump() {
  namespace ev = smtp::client_event;
  auto c = core.lock();
  while (auto e = client.next_client_event()) {
    if (!c || state == State::Done) continue;
    if (std::holds_alternative<ev::Ready>(*e)) {
      if (state == State::Greeting) {
        uncount();
        dest->cursor = index;  // this one works: the next attempts use it too
        c->log(3, "connected to " + cand.where() + (client.tls() ? " with TLS" : ""));
        // MTA-STS hook: in testing mode, a session without TLS is logged (RFC 8461 5).
        if (dest->sts_testing && !client.tls()) c->log(1, "MTA-STS testing: " + cand.host + " does not offer STARTTLS");
      }
      current.reset();
      state = State::Idle;
      next(*c);
    } else if (auto* r = std::get_if<ev::RcptResult>(&*e)) {
      if (r->index < rcpt_replies.size()) rcpt_replies[r->index] = r->reply;
    } else if (auto* m = std::get_if<ev::MailResult>(&*e)) {
      finish_message(*c, *m);
    } else if (auto* f = std::get_if<ev::Failed>(&*e)) {
      failed(f->reason, f->reply);
    }
  }
}

void Attempt::next(Core& c) {
  if (state != State::Idle) return;
  std::shared_ptr<Message> m;
  if (sent < c.o.max_messages_per_connection && !c.stopped) {
    if (!dest->pending.empty() && !dest->rate_ok(c)) dest->throttle(c);
    if (!dest->pending.empty()) {
      m = dest->pending.front();
      dest->pending.pop_front();
    }
  }
  if (!m) {
    state = State::Quitting;
    client.quit();
    if (kick) kick();
    return;
  }
  current = m;
  if (!dest->pending.empty()) load(c, dest->pending.front());  // the next one, while this one goes out
  if (m->data_state == Message::Data::Ready || m->data_state == Message::Data::Failed) return send(c);
  state = State::Loading;
  std::weak_ptr<Attempt> self = shared_from_this();
  m->on_data = [self] {
    auto a = self.lock();
    if (!a || a->state != State::Loading) return;
    if (auto cc = a->core.lock()) a->send(*cc);
    if (a->kick) a->kick();
  };
  load(c, m);
}

void Attempt::load(Core& c, const std::shared_ptr<Message>& m) {
  if (m->data_state != Message::Data::None) return;
  m->data_state = Message::Data::Loading;
  c.blocking<Result<std::string>>([&q = c.queue, id = m->rcpts.front().id] { return q.message_data(id); },
                                  [m](Core&, Result<std::string> d) {
                                    if (d) {
                                      m->data = std::make_shared<const std::string>(std::move(*d));
                                      m->data_state = Message::Data::Ready;
                                    } else {
                                      m->data_error = d.error().to_string();
                                      m->data_state = Message::Data::Failed;
                                    }
                                    if (auto f = std::move(m->on_data)) f();  // the attempt waiting for it
                                  });
}

void Attempt::send(Core& c) {
  Message& m = *current;
  if (m.data_state == Message::Data::Failed) {
    // Gone (deleted meanwhile) or unreadable: give the leases back, due in a minute (a deleted
    // entry is skipped), so that a database in trouble is not asked again at once.
    c.log(0, "cannot read queued message " + m.rcpts.front().queue_id + ": " + m.data_error);
    std::vector<store::QueueOutcome> out;
    for (const auto& r : m.rcpts) out.push_back({r.id, store::QueueOutcome::Kind::Released, "", false, unix_now() + 60});
    c.settle(std::move(out));
    current.reset();
    state = State::Idle;
    return next(c);
  }
  // REQUIRETLS hook (RFC 8689 4.2.1): verified TLS to a host that no forged MX answer could name.
  if (m.rcpts.front().tls_required == store::TlsRequired::Yes) {
    const bool mx = !dest->target.handoff() && !dest->target.domain.starts_with("[");
    if (auto f = mail::requiretls::check_path({client.tls(), client.tls() && cand.verify, !mx || dest->sts_enforce}, cand.host)) {
      c.log(1, backends::LogLine("delivery")
                   .add("id", m.rcpts.front().queue_id)
                   .add("relay", relay_of(cand))
                   .add("result", "failed")
                   .add("reply", f->record)
                   .str());
      c.fail_message(m.rcpts, *f);
      current.reset();
      state = State::Idle;
      return next(c);
    }
  }
  rcpt_replies.assign(m.rcpts.size(), std::nullopt);
  Status st = client.send_mail(envelope_of(m), *m.data);
  if (!st.ok()) {
    // Refused before sending (SIZE, SMTPUTF8, 8BITMIME): permanent for this server's domain.
    const mail::Failure f = mail::refused_before_sending(st.message(), cand.host);
    c.log(1, backends::LogLine("delivery")
                 .add("id", m.rcpts.front().queue_id)
                 .add("relay", relay_of(cand))
                 .add("result", "failed")
                 .add("reply", f.record)
                 .str());
    c.fail_message(m.rcpts, f);
    current.reset();
    state = State::Idle;
    return next(c);
  }
  state = State::Sending;
  ++sent;
  if (c.o.ratelimit) dest->sent->push_back(SteadyClock::now());
}

void Attempt::finish_message(Core& c, const smtp::client_event::MailResult& r) {
  Message& m = *current;
  std::vector<mail::AttemptedRecipient> who;
  for (const auto& e : m.rcpts) who.push_back(attempted(e));
  const auto outcomes =
      mail::transaction_outcomes(r, rcpt_replies, who, cand.host, client.extensions().dsn, c.o.retry, unix_now());
  std::vector<std::pair<store::QueueEntry, smtp::Reply>> relayed;
  for (std::size_t i = 0; i < m.rcpts.size(); ++i) {
    const store::QueueEntry& e = m.rcpts[i];
    const mail::RecipientOutcome& o = outcomes[i];
    if (o.kind == mail::RecipientOutcome::Kind::Delivered) {
      c.log(1, backends::LogLine("delivery")
                   .add("id", e.queue_id)
                   .add("to", "<" + e.envelope_to + ">")
                   .add("relay", relay_of(cand))
                   .add("result", "delivered")
                   .add("reply", o.reply->summary())
                   .str());
      if (o.relayed) relayed.push_back({e, *o.reply});
    } else {
      const bool fatal = o.kind == mail::RecipientOutcome::Kind::Failed;
      backends::LogLine l("delivery");
      l.add("id", e.queue_id).add("to", "<" + e.envelope_to + ">").add("relay", relay_of(cand));
      l.add("result", fatal ? "failed" : "deferred").add("reply", o.record);
      if (o.given_up) l.add("final", "yes");  // the last try: a bounce follows
      c.log(1, l.str());
    }
  }
  c.settle(m.rcpts, outcomes);
  if (!relayed.empty()) c.report_relayed(m.data, std::move(relayed), cand.host);
  current.reset();
  state = State::Idle;  // Ready follows and takes the next message
}

void Attempt::failed(const std::string& reason, const std::optional<smtp::Reply>& reply) {
  auto c = core.lock();
  State was = state;
  state = State::Done;
  if (!c) return;
  uncount();
  if (was == State::Connecting || was == State::Greeting) {
    dest->last_error = mail::unusable_candidate(cand, reply, reason);
    // MTA-STS hook: a host of an enforced policy that failed in TLS says so (RFC 8461 5).
    if (dest->sts_enforce)
      if (auto sts = mail::mta_sts::enforced_failure(cand.host, reason)) dest->last_error = *sts + " (" + cand.where() + ")";
    c->log(3, "cannot use " + cand.where() + ": " + dest->last_error);
    if (dest->cursor == index) ++dest->cursor;  // the next attempt tries the next candidate
    return;
  }
  if (current && (was == State::Sending || was == State::Loading)) {
    // Lost mid-transaction: nothing was acknowledged (or the 250 never came), try again later.
    if (was == State::Loading) {
      dest->pending.push_front(current);  // not sent at all: another attempt may take it
    } else {
      c->fail_message(current->rcpts, mail::lost_transaction(cand, reply, reason));
    }
    current.reset();
  }
}

void Attempt::closed(const std::string& reason) {
  if (state != State::Done && state != State::Quitting) failed(reason.empty() ? "connection closed" : reason, std::nullopt);
  state = State::Done;
  auto c = core.lock();
  dest->attempts.erase(this);
  if (!c) return;
  --c->connections;
  c->pump();
  c->maybe_finish();
}

void Destination::resolve(Core& core) {
  route = Route::Resolving;
  candidates.clear();
  cursor = 0;
  mx_secure = false;
  mail::FirstLookup first = mail::first_lookup(target, core.route_options);
  if (!first.mx) return lookup(core, std::move(first.hosts));
  auto self = shared_from_this();
  std::weak_ptr<Core> wc = core.weak();
  core.resolver.mx(*first.mx, [self, wc](mail::MxResult r) {
    auto c = wc.lock();
    if (!c) return;
    self->mx_secure = r.secure;  // DANE: RFC 7672 2.2.1
    auto hosts = mail::hosts_from_mx(self->target, r, c->route_options, c->rng);
    if (auto* f = std::get_if<mail::Failure>(&hosts)) return self->fail_all(*c, *f);
    // MTA-STS hook: the domain's policy chooses among its MX hosts (RFC 8461 5).
    if (c->mta_sts && !self->tls_optional) return self->mta_sts(*c, std::get<mail::HostPlan>(std::move(hosts)));
    self->lookup(*c, std::get<mail::HostPlan>(std::move(hosts)));
  });
}

// MTA-STS (RFC 8461 5): the policy in force for the domain, applied to the MX hosts; then their
// addresses as without one. The rules are cmail/mail/mta_sts.h's.
void Destination::mta_sts(Core& core, mail::HostPlan plan) {
  sts_enforce = sts_testing = false;
  auto self = shared_from_this();
  std::weak_ptr<Core> wc = core.weak();
  core.mta_sts->policy(target.domain, [self, wc, plan = std::move(plan)](PolicyAnswer policy) mutable {
    auto c = wc.lock();
    if (!c) return;
    if (!policy) return self->lookup(*c, std::move(plan));
    auto applied = mail::mta_sts::apply(*policy, self->target.domain, std::move(plan));
    for (const auto& note : applied.notes) c->log(1, note);
    if (auto* f = std::get_if<mail::Failure>(&applied.plan)) return self->fail_all(*c, *f);
    self->sts_enforce = applied.verify;
    self->sts_testing = policy->mode == mail::mta_sts::Mode::Testing;
    self->lookup(*c, std::get<mail::HostPlan>(std::move(applied.plan)));
  });
}

// The addresses of every host of the plan at once, then the candidates.
void Destination::lookup(Core& core, mail::HostPlan plan) {
  struct Pending {
    mail::HostPlan plan;
    std::vector<mail::AddressResult> results;
    std::size_t left = 0;
  };
  auto p = std::make_shared<Pending>();
  p->plan = std::move(plan);
  p->results.resize(p->plan.hosts.size());
  p->left = p->plan.hosts.size();
  auto self = shared_from_this();
  std::weak_ptr<Core> wc = core.weak();
  auto done = [self, wc, p] {
    auto c = wc.lock();
    if (!c) return;
    auto route = mail::route_candidates(self->target, p->plan, p->results, c->route_options);
    if (auto* f = std::get_if<mail::Failure>(&route)) return self->fail_all(*c, *f);
    auto candidates = std::get<std::vector<mail::Candidate>>(std::move(route));
    self->dane = {};
    // DANE (RFC 7672): TLSA records where the MX and address answers are secure decide which
    // candidates are tried and how (dane_route.h).
    if (!self->target.handoff() && dane_wanted(self->mx_secure, p->plan, p->results))
      return dane_route(c->resolver, self->target.domain, self->mx_secure, p->plan, p->results, std::move(candidates),
                        [self, wc](DaneRoute d) {
                          auto c = wc.lock();
                          if (!c) return;
                          for (const std::string& n : d.notes) c->log(3, "DANE for " + self->target.name + ": " + n);
                          if (d.failure) return self->fail_all(*c, *d.failure);
                          std::vector<mail::Candidate> allowed = std::move(d.candidates);
                          self->dane = std::move(d);
                          self->routed(*c, std::move(allowed));
                        });
    self->routed(*c, std::move(candidates));
  };
  if (p->left == 0) return done();
  for (std::size_t i = 0; i < p->plan.hosts.size(); ++i)
    core.resolver.addresses(p->plan.hosts[i], [p, i, done](mail::AddressResult r) {
      p->results[i] = std::move(r);
      if (--p->left == 0) done();
    });
}

void Destination::routed(Core& core, std::vector<mail::Candidate> c) {
  route = Route::Ready;
  candidates = std::move(c);
  // MTA-STS hook: enforce requires TLS with a certificate valid for the MX host (RFC 8461 4.2).
  if (sts_enforce)
    for (auto& cand : candidates) cand.verify = true;
  cursor = 0;
  core.pump();
}

void Destination::fail_all(Core& core, const mail::Failure& f) {
  route = Route::None;  // resolve again next time
  cursor = 0;
  core.log(1, backends::LogLine("delivery")
                  .add("messages", pending.size())
                  .add("destination", target.name)
                  .add("result", f.fatal ? "failed" : "deferred")
                  .add("reply", f.record)
                  .str());
  while (!pending.empty()) {
    auto m = pending.front();
    pending.pop_front();
    core.fail_message(m->rcpts, f);
  }
  core.maybe_finish();
}

void Destination::throttle(Core& core) {
  // Over the rate: everything still pending waits for the window to move, outside the lease.
  auto resume = unix_now() + 60;
  std::vector<store::QueueOutcome> out;
  for (const auto& m : pending)
    for (const auto& r : m->rcpts) out.push_back({r.id, store::QueueOutcome::Kind::Released, "", false, resume});
  core.log(1, "ratelimit reached for " + target.name + ": " + std::to_string(out.size()) + " recipient(s) wait a minute");
  pending.clear();
  core.settle(std::move(out));
}

void Destination::open_attempt(Core& core) {
  const mail::Candidate& cand = candidates[cursor];
  smtp::ClientOptions co;
  co.helo_name = core.o.announce;
  mail::configure_client(cand, co);
  const DaneConnection* dane_conn = dane_connection(dane, cand, co);  // DANE: TLS required (dane_route.h)
  co.auth_without_tls = core.o.plaintext_auth;
  if (core.o.reply_timeout.count() > 0)
    co.greeting_timeout = co.command_timeout = co.data_block_timeout = co.data_end_timeout = core.o.reply_timeout;
  auto a = std::make_shared<Attempt>(core.weak(), shared_from_this(), cursor, co);
  attempts.insert(a.get());
  ++connecting;
  ++core.connections;
  ++core.stats.connections;
  net::ConnectOptions no;
  no.address = cand.address;
  no.port = cand.port.port;
  no.bind_address = core.o.bind;
  no.implicit_tls = cand.port.tls == mail::TlsMode::Implicit;
  no.tls = cand.verify ? core.tls_strict : core.tls_loose;
  if (!cand.verify && sts_testing) no.tls = core.tls_testing;  // MTA-STS hook: verified, for the log
  // DANE: the TLSA records authenticate it; MTA-STS never overrides DANE (RFC 8461 2).
  if (dane_conn && dane_conn->tls) no.tls = dane_conn->tls;
  no.server_name = cand.host;
  no.connect_timeout = core.o.connect_timeout;
  std::weak_ptr<Attempt> weak = a;
  a->kick = core.rt.connect(
      no, std::make_unique<AttemptHandler>(a),
      [weak](Status st) {
        auto at = weak.lock();
        if (!at) return;
        if (st.ok()) {
          at->state = Attempt::State::Greeting;
          return;
        }
        // Never connected: the handler (and this attempt with it) is dropped.
        at->failed(st.message(), std::nullopt);
        at->closed("");
      },
      [weak](std::string reason) {
        if (auto at = weak.lock()) at->closed(reason);
      });
}

}  // namespace

template <typename R>
void Core::blocking(std::function<R()> work, std::function<void(Core&, R)> then) {
  std::weak_ptr<Core> w = weak();
  auto post = ex.post;
  rt.run_blocking([w, post, work = std::move(work), then = std::move(then)]() mutable {
    auto result = std::make_shared<R>(work());
    post([w, result, then = std::move(then)] {
      if (auto c = w.lock()) then(*c, std::move(*result));
    });
  });
}

void Core::start() {
  daemon = true;
  uv_loop_t* loop = net::loop_of(rt);
  auto timer = [loop, this](uv_timer_t*& t) {
    t = new uv_timer_t;
    uv_timer_init(loop, t);
    t->data = this;
  };
  timer(wake);
  timer(renew);
  timer(bounce_timer);
  const std::string path = queue.notify_path();
  if (!path.empty()) {
    watch = new uv_fs_event_t;
    uv_fs_event_init(loop, watch);
    watch->data = this;
    if (!watch_notify()) {
      log(0, "cannot watch " + path + "; polling every " + std::to_string(o.interval.count() / 1000) + " s");
      uv_close(reinterpret_cast<uv_handle_t*>(watch), [](uv_handle_t* h) { delete reinterpret_cast<uv_fs_event_t*>(h); });
      watch = nullptr;
    }
  }
  const std::uint64_t every = static_cast<std::uint64_t>(o.lease_seconds) * 1000 / 3;
  uv_timer_start(renew, [](uv_timer_t* t) {
    auto* c = static_cast<Core*>(t->data);
    if (c->inflight > 0) {
      std::string owner = c->o.owner;
      std::int64_t until = unix_now() + c->o.lease_seconds;
      c->blocking<Status>([&q = c->queue, owner, until] { return q.renew(owner, until); },
                          [](Core& core, Status st) {
                            if (!st.ok()) core.log(0, "cannot renew leases: " + st.to_string());
                          });
    }
    c->release_dead_owners();
  }, every, every);
  std::weak_ptr<Core> w = weak();
  rt.at_shutdown([w] {
    if (auto c = w.lock()) c->stop();
  });
  release_dead_owners();
  schedule_scan();
  schedule_bounces();
}

bool Core::watch_notify() {
  const std::string path = queue.notify_path();
  if (FILE* f = std::fopen(path.c_str(), "a")) std::fclose(f);  // inotify needs the file
  return uv_fs_event_start(watch, [](uv_fs_event_t* h, const char*, int events, int) {
           auto* c = static_cast<Core*>(h->data);
           if (events & UV_RENAME) {  // deleted or replaced: watch the new file
             uv_fs_event_stop(h);
             if (!c->watch_notify()) c->log(0, "lost the watch on " + c->queue.notify_path());
           }
           c->schedule_scan();
         }, path.c_str(), 0) == 0;
}

void Core::stop() {
  if (stopped) return;
  stopped = true;
  auto close_timer = [](uv_timer_t*& t) {
    if (!t) return;
    uv_timer_stop(t);
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    t = nullptr;
  };
  close_timer(wake);
  close_timer(renew);
  close_timer(bounce_timer);
  if (watch) {
    uv_fs_event_stop(watch);
    uv_close(reinterpret_cast<uv_handle_t*>(watch), [](uv_handle_t* h) { delete reinterpret_cast<uv_fs_event_t*>(h); });
    watch = nullptr;
  }
}

void Core::release_dead_owners() {
  blocking<std::vector<std::string>>(
      [&q = queue] {
        std::vector<std::string> released;
        auto owners = q.lease_owners();
        if (!owners) return released;
        for (const std::string& who : *owners)
          if (store::process_token_dead(who) && q.release_owner(who).has_value()) released.push_back(who);
        return released;
      },
      [](Core& c, std::vector<std::string> released) {
        for (const auto& who : released) c.log(1, "released the leases of " + who + ", which is no longer running");
        if (!released.empty()) c.schedule_scan();
      });
}

void Core::schedule_scan() {
  if (stopped || !daemon) return;
  if (scanning) {
    rescan = true;
    return;
  }
  scan();
}

void Core::scan() {
  const std::size_t room = inflight < kMaxInflight ? kMaxInflight - inflight : 0;
  if (room == 0) {
    capacity_limited = true;
    return;
  }
  scanning = true;
  struct Got {
    Result<std::vector<store::QueueEntry>> leased = std::vector<store::QueueEntry>{};
    Result<std::optional<std::int64_t>> next = std::optional<std::int64_t>{};
    std::int64_t now = 0;
  };
  blocking<Got>(
      [&q = queue, owner = o.owner, room, lease = o.lease_seconds] {
        Got g;
        g.now = unix_now();
        g.leased = q.lease_due(owner, g.now, room, lease);
        g.next = q.next_due();
        return g;
      },
      [room](Core& c, Got g) {
        c.scanning = false;
        if (!g.leased) {
          c.log(0, "cannot lease queue entries: " + g.leased.error().to_string());
        } else {
          c.capacity_limited = g.leased->size() >= room;
          if (!g.leased->empty()) c.log(3, "leased " + std::to_string(g.leased->size()) + " queue entries");
          c.add_entries(std::move(*g.leased));
        }
        c.arm_wake(g.next ? *g.next : std::nullopt, g.now);
        if (c.rescan) {
          c.rescan = false;
          c.schedule_scan();
        }
        c.maybe_finish();
      });
}

void Core::arm_wake(std::optional<std::int64_t> next_due, std::int64_t now) {
  if (!wake || stopped) return;
  std::int64_t ms = o.interval.count();
  if (next_due && !capacity_limited) ms = std::min<std::int64_t>(ms, *next_due > now ? (*next_due - now) * 1000 + 50 : 1000);
  uv_timer_start(wake, [](uv_timer_t* t) {
    auto* c = static_cast<Core*>(t->data);
    c->schedule_scan();
    c->schedule_bounces();
  }, static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 10)), 0);
}

void Core::add_entries(std::vector<store::QueueEntry> entries) {
  inflight += entries.size();
  TransactionPlan plan = plan_transactions(std::move(entries), o.max_recipients);
  for (auto& [e, f] : plan.failed) fail_message({e}, f);  // no destination: say so, once per entry
  for (DestinationPlan& p : plan.destinations) {
    for (Transaction& t : p.transactions) {
      // TLS-Required hook (RFC 8689 5): "TLS-Required: No" mail ignores the recipient domain's TLS
      // policies (MTA-STS), so it goes to a Destination of its own (the same rate window).
      const bool optional = !p.target.handoff() && t.rcpts.front().tls_required == store::TlsRequired::No;
      auto& d = dests[optional ? p.target.key + "\n(TLS-Required: No)" : p.target.key];
      if (!d) {
        d = std::make_shared<Destination>();
        auto& window = rate_windows[p.target.key];
        if (!window) window = std::make_shared<std::deque<SteadyClock::time_point>>();
        d->sent = window;
        d->target = p.target;
        d->tls_optional = optional;
      }
      d->pending.push_back(std::make_shared<Message>(std::move(t)));
    }
  }
  pump();
}

void Core::pump() {
  for (auto it = dests.begin(); it != dests.end();) {
    Destination& d = *it->second;
    if (!d.pending.empty() && !d.rate_ok(*this)) d.throttle(*this);  // no connection just to wait
    if (!d.pending.empty() && d.route == Destination::Route::None) d.resolve(*this);
    if (d.route == Destination::Route::Ready) {
      while (!stopped && !d.pending.empty() && connections < o.max_connections && d.attempts.size() < o.max_per_destination &&
             d.pending.size() > d.connecting && d.cursor < d.candidates.size())
        d.open_attempt(*this);
      if (!d.pending.empty() && d.cursor >= d.candidates.size() && d.attempts.empty()) {
        // Every candidate failed before a transaction could start.
        auto keep = it->second;
        keep->fail_all(*this, mail::unreachable(d.target, d.last_error));
      }
    }
    if (it->second->idle()) {
      auto w = rate_windows.find(it->second->target.key);
      if (w != rate_windows.end() && (w->second->empty() || w->second->back() < SteadyClock::now() - std::chrono::minutes(1)))
        rate_windows.erase(w);
      it = dests.erase(it);
    } else {
      ++it;
    }
  }
}

void Core::fail_message(const std::vector<store::QueueEntry>& rcpts, const mail::Failure& f) {
  std::vector<mail::RecipientOutcome> out;
  const std::int64_t now = unix_now();
  for (const store::QueueEntry& e : rcpts) out.push_back(mail::outcome_of_failure(f, attempted(e), o.retry, now));
  settle(rcpts, out);
}

void Core::settle(const std::vector<store::QueueEntry>& rcpts, const std::vector<mail::RecipientOutcome>& outcomes) {
  std::vector<store::QueueOutcome> out;
  for (std::size_t i = 0; i < rcpts.size() && i < outcomes.size(); ++i) {
    out.push_back(queue_outcome(rcpts[i].id, outcomes[i]));
    switch (outcomes[i].kind) {
      case mail::RecipientOutcome::Kind::Delivered: ++stats.delivered; break;
      case mail::RecipientOutcome::Kind::Deferred: ++stats.deferred; break;
      case mail::RecipientOutcome::Kind::Failed: ++stats.failed; break;
    }
  }
  settle(std::move(out));
}

void Core::settle(std::vector<store::QueueOutcome> outcomes) {
  if (outcomes.empty()) return;
  inflight -= std::min(inflight, outcomes.size());
  ++pending_settles;
  bool failures = std::any_of(outcomes.begin(), outcomes.end(),
                              [](const store::QueueOutcome& x) { return x.kind == store::QueueOutcome::Kind::Failed; });
  std::weak_ptr<Core> w = weak();
  auto post = ex.post;
  queue.settle(std::move(outcomes), o.owner, [w, post, failures](Status st) {  // on the writer thread
    post([w, st, failures] {
      auto c = w.lock();
      if (!c) return;
      --c->pending_settles;
      if (!st.ok()) c->log(0, "cannot record delivery results: " + st.to_string());
      if (failures) c->schedule_bounces();
      if (c->capacity_limited && c->inflight < kMaxInflight / 2) c->schedule_scan();
      c->maybe_finish();
    });
  });
}

void Core::schedule_bounces() {
  if (stopped || !daemon || !bounce_timer) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(bounce_timer))) return;
  uv_timer_start(bounce_timer, [](uv_timer_t* t) { static_cast<Core*>(t->data)->bounces(); }, 100, 0);  // coalesce
}

void Core::bounces() {
  if (bouncing) {
    bounce_again = true;
    return;
  }
  bouncing = true;
  blocking<BounceRun>(
      [st = &store, ro = report_options, retry = o.retry, lease = o.lease_seconds] {
        return return_given_up(*st, ro, retry, lease, unix_now(), kBounceBatch);
      },
      [](Core& c, BounceRun r) {
        c.bouncing = false;
        c.stats.bounces += r.bounces;
        for (const auto& n : r.notes) c.log(1, n);
        if (r.leased >= kBounceBatch || c.bounce_again) {  // more to do
          c.bounce_again = false;
          c.bounces();
        }
        if (r.bounces) c.schedule_scan();  // the bounces just queued
        c.maybe_finish();
      });
}

void Core::report_relayed(std::shared_ptr<const std::string> data,
                          std::vector<std::pair<store::QueueEntry, smtp::Reply>> rcpts, std::string host) {
  if (null_sender(rcpts.front().first)) return;  // nobody to tell
  ++pending_settles;  // a one-shot run waits for the report too
  blocking<std::vector<std::string>>(
      [st = &store, ro = report_options, data, rcpts = std::move(rcpts), host] {
        return store_relay_report(*st, rcpts, host, data ? *data : std::string(), ro, unix_now());
      },
      [](Core& c, std::vector<std::string> notes) {
        --c.pending_settles;
        for (const auto& n : notes) c.log(1, n);
        c.maybe_finish();
      });
}

void Core::maybe_finish() {
  if (!one_shot_done || scanning || bouncing || pending_settles > 0) return;
  for (const auto& [k, d] : dests)
    if (!d->idle()) return;
  auto done = std::move(one_shot_done);
  one_shot_done = nullptr;
  done(Status());
}

void Core::one_shot(std::function<bool(const store::QueueEntry&)> pick, std::function<void(Status)> done) {
  one_shot_done = std::move(done);
  scanning = true;
  blocking<Result<std::vector<store::QueueEntry>>>(
      [&q = queue, owner = o.owner, lease = o.lease_seconds, pick] () -> Result<std::vector<store::QueueEntry>> {
        auto all = q.list();
        if (!all) return all.error();
        std::vector<std::int64_t> ids;
        for (const auto& e : *all)
          if (pick(e)) ids.push_back(e.id);
        return q.lease_ids(ids, owner, unix_now(), lease);
      },
      [](Core& c, Result<std::vector<store::QueueEntry>> got) {
        c.scanning = false;
        if (!got) {
          auto done = std::move(c.one_shot_done);
          c.one_shot_done = nullptr;
          if (done) done(got.error());
          return;
        }
        c.add_entries(std::move(*got));
        c.maybe_finish();
      });
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}


Result<std::unique_ptr<Dispatcher>> Dispatcher::create(net::Runtime& runtime, store::Store& store, mail::Resolver& resolver,
                                                       DispatcherOptions options) {
  if (options.owner.empty()) options.owner = store::process_token("dispatchd");
  if (options.portprio.empty()) return Status::invalid_argument("portprio needs at least one port");
  auto core = std::make_shared<Core>(runtime, store, resolver, std::move(options));
  TlsClientOptions loose;
  loose.verify = false;
  auto l = TlsClientContext::load(loose);
  if (!l) return l.error();
  core->tls_loose = *l;
  if (core->o.verify != mail::TlsVerify::Never || core->o.mta_sts) {
    TlsClientOptions strict;
    strict.ca_file = core->o.ca_file;
    auto s = TlsClientContext::load(strict);
    if (!s) return s.error();
    core->tls_strict = *s;
  }
  core->ex = runtime.executor();
  if (core->o.mta_sts) {  // MTA-STS hook: policies fetched with the same trust and resolver
    MtaStsOptions mo;
    mo.ca_file = core->o.ca_file;
    mo.port = core->o.mta_sts_port;
    mo.bind = core->o.bind;
    mo.log = core->o.log;
    mo.store = &core->store;  // RFC 8461 5.1: policies outlive restarts
    if (core->o.connect_timeout < mo.timeout) mo.timeout = core->o.connect_timeout;
    auto m = MtaSts::create(runtime, resolver, std::move(mo));
    if (!m) return m.error();
    core->mta_sts = std::move(*m);
    TlsClientOptions testing;
    testing.ca_file = core->o.ca_file;
    testing.verify_optional = true;
    auto t = TlsClientContext::load(testing);
    if (!t) return t.error();
    core->tls_testing = *t;
  }
  return std::unique_ptr<Dispatcher>(new Dispatcher(std::move(core)));
}

Dispatcher::Dispatcher(std::shared_ptr<Core> core) : core_(std::move(core)) {}
Dispatcher::~Dispatcher() { core_->stop(); }

void Dispatcher::start() { core_->start(); }
void Dispatcher::run_now() {
  core_->schedule_scan();
  core_->schedule_bounces();
}

void Dispatcher::deliver_domain(std::string domain, std::function<void(Status)> done) {
  std::string d = proto::ascii_lower(domain);
  core_->one_shot([d](const store::QueueEntry& e) { return !e.remote && mail::recipient_domain(e.envelope_to) == d; },
                  std::move(done));
}

void Dispatcher::deliver_remote(std::string remote, std::function<void(Status)> done) {
  core_->one_shot([remote](const store::QueueEntry& e) { return e.remote && *e.remote == remote; }, std::move(done));
}

void Dispatcher::generate_bounces(std::function<void(Status)> done) {
  core_->one_shot_done = std::move(done);
  core_->bounces();
}

DispatcherStats Dispatcher::stats() const { return core_->stats; }
const std::string& Dispatcher::owner() const { return core_->o.owner; }

}  // namespace cmail::net
