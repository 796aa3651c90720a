// MTA-STS policies on the runtime: see cmail/net/mta_sts.h.
#include <cmail/net/mta_sts.h>

#include <cmail/http/client.h>
#include <cmail/net/runtime.h>
#include <cmail/net/tls.h>
#include <cmail/store/queue.h>

#include <map>
#include <set>
#include <vector>

namespace cmail::net {

namespace {

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool same_family(const std::string& bind, const std::string& address) {
  if (bind.empty()) return true;
  return (bind.find(':') != std::string::npos) == (address.find(':') != std::string::npos);
}

}  // namespace

struct MtaSts::Core : std::enable_shared_from_this<MtaSts::Core> {
  Core(Runtime& r, mail::Resolver& res, MtaStsOptions opt) : rt(r), resolver(res), o(std::move(opt)) {}
  Runtime& rt;
  mail::Resolver& resolver;
  MtaStsOptions o;
  std::shared_ptr<TlsClientContext> tls;
  std::map<std::string, mail::mta_sts::Cached> cache;
  std::map<std::string, std::vector<std::function<void(PolicyAnswer)>>> waiting;
  std::set<std::string> loaded;  // domains whose stored row was read (Store given)

  void log(int level, const std::string& line) const {
    if (o.log) o.log(level, line);
  }
  std::optional<mail::mta_sts::Cached> cached(const std::string& domain) const {
    auto it = cache.find(domain);
    if (it == cache.end()) return std::nullopt;
    return it->second;
  }

  void txt_answer(const std::string& domain, const mail::TxtResult& txt) {
    namespace sts = mail::mta_sts;
    const auto c = cached(domain);
    switch (sts::next_step(c, txt, unix_now())) {
      case sts::Step::UseCached: return finish(domain, c->policy);
      case sts::Step::NoPolicy: return finish(domain, std::nullopt);
      case sts::Step::Fetch: break;
    }
    const std::string id = *sts::select_txt(txt.records);
    const std::string host = sts::policy_host(domain);
    std::weak_ptr<Core> w = shared_from_this();
    resolver.addresses(host, [w, domain, id](mail::AddressResult r) {
      auto self = w.lock();
      if (!self) return;
      if (r.status != mail::DnsStatus::Ok || r.addresses.empty())
        return self->fetched(domain, id, Status::io_error("cannot resolve " + mail::mta_sts::policy_host(domain) + ": " +
                                                             (r.error.empty() ? to_string(r.status) : r.error)));
      std::vector<std::string> addresses;
      for (auto& a : r.addresses)
        if (same_family(self->o.bind, a)) addresses.push_back(std::move(a));
      if (addresses.empty())
        return self->fetched(domain, id, Status::io_error("no address of the policy host is of the family of bind"));
      self->connect(domain, id, std::move(addresses), 0);
    });
  }

  // RFC 8461 3.3: HTTPS GET of the well-known URI, the certificate valid for the policy host.
  void connect(const std::string& domain, const std::string& id, std::vector<std::string> addresses, std::size_t i) {
    const std::string host = mail::mta_sts::policy_host(domain);
    http::ClientOptions ho;
    ho.host = host;
    if (o.port != 443) ho.host += ":" + std::to_string(o.port);  // RFC 9110 7.2: the port when not the default
    ho.target = std::string(mail::mta_sts::kWellKnown);
    ho.limits.max_body = mail::mta_sts::kMaxPolicySize;  // RFC 8461 3.3: 64 KiB
    ho.timeout = o.timeout;
    auto client = std::make_shared<http::Client>(ho);
    ConnectOptions co;
    co.address = addresses[i];
    co.port = o.port;
    co.bind_address = o.bind;
    co.implicit_tls = true;
    co.tls = tls;
    co.server_name = host;
    co.connect_timeout = o.timeout;
    std::weak_ptr<Core> w = shared_from_this();
    auto where = host + " [" + addresses[i] + "]:" + std::to_string(o.port);
    rt.connect(
        co, std::make_unique<EngineHandler<http::Client>>(client),
        [w, domain, id, addresses, i, where](Status st) {
          auto self = w.lock();
          if (!self || st.ok()) return;
          self->log(3, "MTA-STS: cannot connect to " + where + ": " + st.message());
          if (i + 1 < addresses.size()) return self->connect(domain, id, addresses, i + 1);
          self->fetched(domain, id, Status::io_error(st.message() + " (" + where + ")"));
        },
        [w, domain, id, client, where](std::string reason) {
          auto self = w.lock();
          if (!self) return;
          if (!client->finished())
            return self->fetched(domain, id, Status::io_error((reason.empty() ? "connection closed" : reason) + " (" + where + ")"));
          auto p = mail::mta_sts::check_response(client->response());
          if (!p) return self->fetched(domain, id, Status::invalid_argument(p.error().message() + " (" + where + ")"));
          self->fetched(domain, id, std::move(*p), client->response().body);
        });
  }

  void fetched(const std::string& domain, const std::string& id, Result<mail::mta_sts::Policy> p,
               const std::string& text = {}) {
    if (!p) {
      // RFC 8461 3.3: no policy could be fetched: the cached one while it is valid, else none.
      auto c = cached(domain);
      const bool keep = c && c->valid(unix_now());
      log(1, "MTA-STS: cannot fetch the policy of " + domain + ": " + p.error().message() +
                 (keep ? "; the cached policy stays in force" : ""));
      return finish(domain, keep ? std::optional(c->policy) : std::nullopt);
    }
    const std::int64_t now = unix_now();
    cache[domain] = mail::mta_sts::Cached{id, *p, now, now + p->max_age};  // RFC 8461 5.1
    if (o.store) {  // RFC 8461 5.1: kept across restarts
      std::weak_ptr<Core> w = shared_from_this();
      store::StsPolicyRow row{domain, id, text, now, now + p->max_age};
      rt.run_blocking([w, st = o.store, row, post = rt.executor().post] {
        Status saved = st->queue().save_mta_sts_policy(row);
        if (!saved.ok())
          post([w, saved, domain = row.domain] {
            if (auto self = w.lock()) self->log(0, "MTA-STS: cannot store the policy of " + domain + ": " + saved.to_string());
          });
      });
    }
    log(1, "MTA-STS: policy of " + domain + " id=" + id + " mode=" + mail::mta_sts::to_string(p->mode) +
               " max_age=" + std::to_string(p->max_age));
    finish(domain, std::move(*p));
  }

  // The stored row of a domain, once (on the pool), into the memory cache; then `then`.
  void load(const std::string& domain, std::function<void()> then) {
    if (!o.store || !loaded.insert(domain).second) return then();
    std::weak_ptr<Core> w = shared_from_this();
    rt.run_blocking([w, st = o.store, domain, then = std::move(then), post = rt.executor().post]() mutable {
      auto row = st->queue().mta_sts_policy(domain);
      post([w, row = std::move(row), domain, then = std::move(then)] {
        auto self = w.lock();
        if (!self) return;
        if (!row) {
          self->log(0, "MTA-STS: cannot read the stored policy of " + domain + ": " + row.error().to_string());
        } else if (*row && !self->cache.count(domain)) {
          if (auto p = mail::mta_sts::parse_policy((*row)->policy))
            self->cache[domain] = mail::mta_sts::Cached{(*row)->id, *p, (*row)->fetched, (*row)->expires};
        }
        then();
      });
    });
  }

  void finish(const std::string& domain, PolicyAnswer answer) {
    auto it = waiting.find(domain);
    if (it == waiting.end()) return;
    auto callbacks = std::move(it->second);
    waiting.erase(it);
    for (auto& cb : callbacks) cb(answer);
  }
};

Result<std::unique_ptr<MtaSts>> MtaSts::create(Runtime& runtime, mail::Resolver& resolver, MtaStsOptions options) {
  auto core = std::make_shared<Core>(runtime, resolver, std::move(options));
  TlsClientOptions t;
  t.verify = true;  // RFC 8461 3.3: a valid certificate for the policy host
  t.ca_file = core->o.ca_file;
  auto ctx = TlsClientContext::load(t);
  if (!ctx) return ctx.error();
  core->tls = *ctx;
  return std::unique_ptr<MtaSts>(new MtaSts(std::move(core)));
}

MtaSts::MtaSts(std::shared_ptr<Core> core) : core_(std::move(core)) {}
MtaSts::~MtaSts() = default;

void MtaSts::policy(const std::string& domain, std::function<void(PolicyAnswer)> done) {
  auto& w = core_->waiting[domain];
  w.push_back(std::move(done));
  if (w.size() > 1) return;  // a lookup is under way
  std::weak_ptr<Core> weak = core_;
  core_->load(domain, [weak, domain] {
    auto core = weak.lock();
    if (!core) return;
    core->resolver.txt(mail::mta_sts::txt_name(domain), [weak, domain](mail::TxtResult r) {
      if (auto c = weak.lock()) c->txt_answer(domain, r);
    });
  });
}

std::optional<mail::mta_sts::Cached> MtaSts::cached(const std::string& domain) const { return core_->cached(domain); }

}  // namespace cmail::net
