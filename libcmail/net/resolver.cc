// libcmail/net/resolver.cc: the c-ares resolver on the Runtime's libuv loop, and the static
// resolver for tests. See cmail/net/resolver.h.
//
// c-ares tells us which sockets to watch (ARES_OPT_SOCK_STATE_CB): one uv_poll_t per socket,
// ares_process_fd() on its events, and one uv_timer_t armed from ares_timeout(). Answers never
// reach the caller from inside c-ares: they are queued and run from a zero timer (Deferred),
// so a callback never runs inside the call that started its lookup and may freely start new
// lookups or destroy the resolver.
//
// MX and TLSA questions (and, with ResolverOptions::dnssec, the AAAA and A questions) go out
// through ares_send() as queries mail::dns::encode_query() builds, with the AD bit set to ask
// for it (RFC 6840 5.7); their answers are read with mail::dns::parse_message() and answer_of(),
// which also give the answer's AD bit (RFC 4035 3.2.3). It becomes `secure` only with
// ResolverOptions::dnssec: the AD bit of a name server not trusted to validate means nothing.
//
// Thread-safety: loop thread only. Ownership: each resolver's state is a shared_ptr held by the
// Resolver; its Runtime::at_shutdown hook holds a weak_ptr, so the Resolver may go before or
// after shutdown. Every libuv handle is heap-allocated and freed in its uv_close callback, so
// the state itself can be freed at once while the closes finish on the loop. Closing the state
// (destruction or shutdown) drops answers not yet delivered and destroys the c-ares channel,
// whose callbacks then only free their requests: a cancelled lookup's callback never runs.
#include <cmail/net/resolver.h>

#include <cmail/mail/dns_message.h>
#include <cmail/proto/ascii.h>

#include "loop.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <netinet/in.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>

namespace cmail::net {


namespace {

// Closes a heap-allocated handle and frees it in the close callback (libuv's rule).
template <typename H>
void close_and_free(H* h) {
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}

// Runs queued answers on a later loop iteration. close() drops whatever has not run yet.
class Deferred {
 public:
  explicit Deferred(uv_loop_t* loop) : timer_(new uv_timer_t) {
    uv_timer_init(loop, timer_);
    timer_->data = this;
  }
  ~Deferred() { close(); }
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;

  void push(std::function<void()> fn) {
    if (!timer_) return;
    queue_.push_back(std::move(fn));
    uv_timer_start(timer_, on_timer, 0, 0);
  }

  void close() {
    if (!timer_) return;
    *alive_ = false;
    close_and_free(timer_);
    timer_ = nullptr;
    queue_.clear();
  }

 private:
  static void on_timer(uv_timer_t* t) {
    auto* self = static_cast<Deferred*>(t->data);
    std::shared_ptr<bool> alive = self->alive_;  // a callback may destroy the resolver
    // Only what was queued before this pass; answers queued meanwhile run in the next one.
    for (std::size_t n = self->queue_.size(); n > 0 && *alive; --n) {
      std::function<void()> fn = std::move(self->queue_.front());
      self->queue_.pop_front();
      fn();
    }
  }

  uv_timer_t* timer_;
  std::deque<std::function<void()>> queue_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Names are compared and looked up without the trailing dot of the absolute form.
std::string without_trailing_dot(std::string_view name) {
  while (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return std::string(name);
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && proto::ascii_lower(s.substr(0, prefix.size())) == prefix;
}

// A numeric host: "192.0.2.1", "2001:db8::1", or an RFC 5321 4.1.3 address literal
// "[192.0.2.1]" / "[IPv6:2001:db8::1]" (also "[2001:db8::1]"). Answers in the canonical form;
// nullopt when `host` is not numeric, an empty address list for a malformed literal.
std::optional<mail::AddressResult> numeric_address(std::string_view host) {
  bool literal = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  std::string text(literal ? host.substr(1, host.size() - 2) : host);
  if (literal && iequals_prefix(text, "ipv6:")) text.erase(0, 5);
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr a4{};
  in6_addr a6{};
  mail::AddressResult r;
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    inet_ntop(AF_INET, &a4, buf, sizeof buf);
  } else if (inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  } else if (literal) {
    r.status = mail::DnsStatus::NxDomain;
    r.error = "malformed address literal " + std::string(host);
    return r;
  } else {
    return std::nullopt;
  }
  r.status = mail::DnsStatus::Ok;
  r.addresses.push_back(buf);
  return r;
}

// One name server as c-ares's CSV wants it ("192.0.2.1:53", "[2001:db8::1]:53"), or nullopt.
// Accepts "HOST", "HOST:PORT", "[IPV6]", "[IPV6]:PORT" and a bare IPv6 address; HOST numeric.
std::optional<std::string> server_entry(std::string_view s) {
  std::string_view host = s, port = "53";
  bool v6 = false;
  if (!s.empty() && s.front() == '[') {
    std::size_t close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port = rest.substr(1);
    }
    v6 = true;
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    std::size_t colon = s.find(':');
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  } else if (s.find(':') != std::string_view::npos) {
    v6 = true;  // a bare IPv6 address, default port
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  int port_number = std::stoi(std::string(port));
  if (port_number < 1 || port_number > 65535) return std::nullopt;
  std::string h(host);
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, h.c_str(), buf) != 1) return std::nullopt;
  return (v6 ? "[" + h + "]" : h) + ":" + std::to_string(port_number);
}

mail::DnsStatus status_of(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS: return mail::DnsStatus::Ok;
    case ARES_ENOTFOUND: return mail::DnsStatus::NxDomain;  // RFC 1035 4.1.1: RCODE 3, Name Error
    case ARES_EBADNAME: return mail::DnsStatus::NxDomain;   // not a valid name: it cannot exist
    case ARES_ENODATA: return mail::DnsStatus::NoData;      // NOERROR without records of the type
    default: return mail::DnsStatus::TempFail;              // timeout, SERVFAIL, REFUSED, network
  }
}

std::once_flag ares_once;
int ares_init_status = ARES_SUCCESS;

// The c-ares channel with its libuv handles.
class Ares {
 public:
  explicit Ares(uv_loop_t* loop) : loop_(loop), deferred_(loop) {}
  ~Ares() { close(); }
  Ares(const Ares&) = delete;
  Ares& operator=(const Ares&) = delete;

  Status start(const ResolverOptions& options) {
    dnssec_ = options.dnssec;
    std::call_once(ares_once, [] { ares_init_status = ares_library_init(ARES_LIB_INIT_ALL); });
    if (ares_init_status != ARES_SUCCESS)
      return Status::internal(std::string("c-ares: ") + ares_strerror(ares_init_status));
    std::string csv;
    for (const std::string& s : options.servers) {
      std::optional<std::string> entry = server_entry(s);
      if (!entry) return Status::invalid_argument("malformed name server '" + s + "'");
      csv += (csv.empty() ? "" : ",") + *entry;
    }
    ares_options o{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
               ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = this;
    o.timeout = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(options.timeout.count(), 1, 3600000));
    o.tries = std::max(1, options.tries);
    // RFC 5321 2.3.5: names are fully qualified, so no search list, ever.
    o.flags = ARES_FLAG_NOSEARCH;
    o.domains = nullptr;
    o.ndomains = 0;
    char lookups[] = "fb";  // /etc/hosts first, then DNS (copied by c-ares)
    o.lookups = lookups;
    int rc = ares_init_options(&channel_, &o, mask);
    if (rc != ARES_SUCCESS) {
      channel_ = nullptr;
      return Status::internal(std::string("c-ares: ") + ares_strerror(rc));
    }
    if (!csv.empty() && (rc = ares_set_servers_ports_csv(channel_, csv.c_str())) != ARES_SUCCESS)
      return Status::invalid_argument("name servers '" + csv + "': " + ares_strerror(rc));
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
    return {};
  }

  void mx(std::string_view domain, std::function<void(mail::MxResult)> done) {
    if (closed_) return;  // after shutdown: cancelled, like the lookups that were in flight
    std::string name = without_trailing_dot(domain);
    if (name.empty() || name.find('\0') != std::string::npos) {
      mail::MxResult r;
      r.status = mail::DnsStatus::NxDomain;
      r.error = "not a domain name";
      return answer(std::move(done), std::move(r));
    }
    send(name, mail::dns::kTypeMx, [this, name, done = std::move(done)](int status, std::string_view wire) mutable {
      Got g = got(status, wire, name, mail::dns::kTypeMx);
      mail::MxResult r;
      r.status = g.status;
      r.error = std::move(g.error);
      r.secure = g.secure;
      for (const mail::dns::Record& rec : g.records) {
        std::optional<mail::MxRecord> m = mail::dns::mx_of(wire, rec);  // RFC 7505: "." comes back as ""
        if (!m) {
          r = {};
          r.error = "malformed MX record for " + name;
          break;
        }
        r.records.push_back(std::move(*m));
      }
      answer(std::move(done), std::move(r));
    });
  }

  void addresses(std::string_view host, std::function<void(mail::AddressResult)> done) {
    if (closed_) return;
    std::string name = without_trailing_dot(host);
    if (std::optional<mail::AddressResult> literal = numeric_address(name))
      return answer(std::move(done), std::move(*literal));
    if (name.empty() || name.find('\0') != std::string::npos) {
      mail::AddressResult r;
      r.status = mail::DnsStatus::NxDomain;
      r.error = "not a host name";
      return answer(std::move(done), std::move(r));
    }
    if (dnssec_) return addresses_validated(name, std::move(done));
    auto* q = new Query<mail::AddressResult>{this, std::move(done)};
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;        // AAAA and A; /etc/hosts is read for both
    hints.ai_flags = ARES_AI_NOSORT;    // we order them ourselves: IPv6 first, then IPv4
    ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, on_addrinfo, q);
    rearm();
  }

  void txt(std::string_view name_in, std::function<void(mail::TxtResult)> done) {
    if (closed_) return;
    std::string name = without_trailing_dot(name_in);
    if (name.empty() || name.find('\0') != std::string::npos) {
      mail::TxtResult r;
      r.status = mail::DnsStatus::NxDomain;
      r.error = "not a domain name";
      return answer(std::move(done), std::move(r));
    }
    auto* q = new Query<mail::TxtResult>{this, std::move(done)};
    ares_query(channel_, name.c_str(), ns_c_in, ns_t_txt, on_txt, q);
    rearm();
  }

  void tlsa(std::string_view name_in, std::function<void(mail::TlsaResult)> done) {
    if (closed_) return;
    std::string name = without_trailing_dot(name_in);
    if (name.empty() || name.find('\0') != std::string::npos) {
      mail::TlsaResult r;
      r.status = mail::DnsStatus::NxDomain;
      r.error = "not a domain name";
      return answer(std::move(done), std::move(r));
    }
    send(name, mail::dns::kTypeTlsa, [this, name, done = std::move(done)](int status, std::string_view wire) mutable {
      Got g = got(status, wire, name, mail::dns::kTypeTlsa);
      mail::TlsaResult r;
      r.status = g.status;
      r.error = std::move(g.error);
      r.secure = g.secure;
      for (const mail::dns::Record& rec : g.records) {
        std::optional<mail::TlsaRecord> t = mail::dns::tlsa_of(wire, rec);
        if (!t) {
          r = {};
          r.error = "malformed TLSA record at " + name;
          break;
        }
        r.records.push_back(std::move(*t));
      }
      answer(std::move(done), std::move(r));
    });
  }

  // Cancels everything; idempotent. The handles finish closing on the loop.
  void close() {
    if (closed_) return;
    closed_ = true;
    deferred_.close();
    if (channel_) ares_destroy(channel_);  // callbacks get ARES_EDESTRUCTION; sockets close
    channel_ = nullptr;
    for (auto& [fd, p] : polls_) close_and_free(p);
    polls_.clear();
    if (timer_) close_and_free(timer_);
    timer_ = nullptr;
  }

 private:
  template <typename R>
  struct Query {
    Ares* owner;
    std::function<void(R)> done;
  };

  struct Poll {
    uv_poll_t handle;  // first: a Poll* is a uv_poll_t*
    Ares* owner;
    ares_socket_t fd;
  };

  template <typename R>
  void answer(std::function<void(R)> done, R r) {
    deferred_.push([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  // A query of our own through ares_send(): `done` gets c-ares's status and the answer's
  // octets (empty without one), unless the resolver closed meanwhile.
  struct Raw {
    Ares* owner;
    std::function<void(int, std::string_view)> done;
  };

  void send(const std::string& name, std::uint16_t type, std::function<void(int, std::string_view)> done) {
    // RFC 6840 5.7: AD=1 in the query asks a validating resolver for the AD bit.
    auto query = mail::dns::encode_query(name, type, static_cast<std::uint16_t>(ids_()), true);
    if (!query) return done(ARES_EBADNAME, {});  // the callers answer through deferred_
    auto* r = new Raw{this, std::move(done)};
    ares_send(channel_, reinterpret_cast<const unsigned char*>(query->data()), static_cast<int>(query->size()), on_raw, r);
    rearm();
  }

  static void on_raw(void* arg, int status, int, unsigned char* abuf, int alen) {
    std::unique_ptr<Raw> r(static_cast<Raw*>(arg));
    if (r->owner->closed_) return;  // cancelled: the callback is never called
    r->done(status, abuf && alen > 0 ? std::string_view(reinterpret_cast<const char*>(abuf), static_cast<std::size_t>(alen))
                                     : std::string_view());
  }

  // What an answer to (name, type) says; `records` are of that type, at the name or at the end
  // of its CNAME chain. `secure` only when the name servers are trusted to validate.
  struct Got {
    mail::DnsStatus status = mail::DnsStatus::TempFail;
    std::string error;
    bool secure = false;
    std::vector<mail::dns::Record> records;
  };

  Got got(int status, std::string_view wire, const std::string& name, std::uint16_t type) const {
    Got g;
    if (status == ARES_EBADNAME) {
      g.status = mail::DnsStatus::NxDomain;  // not a valid name: it cannot exist
      g.error = std::string(ares_strerror(status)) + " " + name;
      return g;
    }
    if (status != ARES_SUCCESS) {  // timeout, SERVFAIL or REFUSED from every server, network
      g.error = ares_strerror(status);
      return g;
    }
    auto m = mail::dns::parse_message(wire);
    if (!m) {
      g.error = m.error().message();
      return g;
    }
    mail::dns::Answer a = mail::dns::answer_of(wire, *m, name, type);
    g.status = a.status;
    g.error = std::move(a.error);
    // RFC 4035 3.2.3: AD says the server validated every RRset of the answer (or the denial);
    // it means something only from a server we trust to validate (RFC 6840 5.7).
    g.secure = dnssec_ && a.authenticated && g.status != mail::DnsStatus::TempFail;
    for (const mail::dns::Record* r : a.records) g.records.push_back(*r);
    return g;
  }

  // ResolverOptions::dnssec: AAAA and A through our own queries, for their AD bits. Names in
  // /etc/hosts answer from there first, as c-ares's "fb" order would, never secure.
  void addresses_validated(const std::string& name, std::function<void(mail::AddressResult)> done) {
    mail::AddressResult from_file;
    for (int family : {AF_INET6, AF_INET}) {
      hostent* h = nullptr;
      if (ares_gethostbyname_file(channel_, name.c_str(), family, &h) != ARES_SUCCESS || !h) continue;
      for (char** a = h->h_addr_list; a && *a; ++a) {
        char buf[INET6_ADDRSTRLEN] = {};
        inet_ntop(h->h_addrtype, *a, buf, sizeof buf);
        if (std::find(from_file.addresses.begin(), from_file.addresses.end(), buf) == from_file.addresses.end())
          from_file.addresses.push_back(buf);
      }
      ares_free_hostent(h);
    }
    if (!from_file.addresses.empty()) {
      from_file.status = mail::DnsStatus::Ok;
      return answer(std::move(done), std::move(from_file));
    }
    struct Both {
      std::function<void(mail::AddressResult)> done;
      Got aaaa, a;
      std::vector<std::string> v6, v4;
      int left = 2;
    };
    auto both = std::make_shared<Both>();
    both->done = std::move(done);
    auto finish = [this, name, both] {
      if (--both->left > 0) return;
      mail::AddressResult r;
      r.addresses = both->v6;  // IPv6 first, then IPv4
      for (const std::string& a : both->v4)
        if (std::find(r.addresses.begin(), r.addresses.end(), a) == r.addresses.end()) r.addresses.push_back(a);
      const Got& x = both->aaaa;
      const Got& y = both->a;
      const bool failed = x.status == mail::DnsStatus::TempFail || y.status == mail::DnsStatus::TempFail;
      r.secure = x.secure && y.secure;
      if (failed && (x.secure || y.secure)) {
        // RFC 7672 2.1.1: a failed lookup beside a validated one is an error, not an
        // insecure answer (it may be a signed zone's bogus answer).
        r.addresses.clear();
        r.secure = false;
      }
      if (!r.addresses.empty()) {
        r.status = mail::DnsStatus::Ok;
      } else if (failed) {
        r.error = x.status == mail::DnsStatus::TempFail ? "AAAA: " + x.error : "A: " + y.error;
      } else if (x.status == mail::DnsStatus::NxDomain && y.status == mail::DnsStatus::NxDomain) {
        r.status = mail::DnsStatus::NxDomain;
        r.error = y.error;
      } else {
        r.status = mail::DnsStatus::NoData;
        r.error = "no addresses for " + name;
      }
      answer(std::move(both->done), std::move(r));
    };
    auto take = [this, name, both, finish](std::uint16_t type) {
      return [this, name, both, finish, type](int status, std::string_view wire) {
        Got g = got(status, wire, name, type);
        std::vector<std::string>& list = type == mail::dns::kTypeAaaa ? both->v6 : both->v4;
        for (const mail::dns::Record& rec : g.records)
          if (auto a = mail::dns::address_of(wire, rec); a && std::find(list.begin(), list.end(), *a) == list.end())
            list.push_back(*a);
        (type == mail::dns::kTypeAaaa ? both->aaaa : both->a) = std::move(g);
        finish();
      };
    };
    send(name, mail::dns::kTypeAaaa, take(mail::dns::kTypeAaaa));
    send(name, mail::dns::kTypeA, take(mail::dns::kTypeA));
  }

  static void on_txt(void* arg, int status, int, unsigned char* abuf, int alen) {
    std::unique_ptr<Query<mail::TxtResult>> q(static_cast<Query<mail::TxtResult>*>(arg));
    if (q->owner->closed_) return;
    mail::TxtResult r;
    if (status == ARES_SUCCESS) {
      ares_txt_ext* head = nullptr;
      status = ares_parse_txt_reply_ext(abuf, alen, &head);
      // Each record's character-strings are joined (RFC 7208 3.3); record_start marks the
      // first string of a record.
      for (ares_txt_ext* t = head; t; t = t->next) {
        if (t->record_start || r.records.empty()) r.records.emplace_back();
        r.records.back().append(reinterpret_cast<const char*>(t->txt), t->length);
      }
      if (head) ares_free_data(head);
      if (status == ARES_SUCCESS && r.records.empty()) status = ARES_ENODATA;
    }
    r.status = status_of(status);
    if (r.status != mail::DnsStatus::Ok) r.error = ares_strerror(status);
    q->owner->answer(std::move(q->done), std::move(r));
  }

  static void on_addrinfo(void* arg, int status, int, ares_addrinfo* res) {
    std::unique_ptr<Query<mail::AddressResult>> q(static_cast<Query<mail::AddressResult>*>(arg));
    std::unique_ptr<ares_addrinfo, void (*)(ares_addrinfo*)> info(res, ares_freeaddrinfo);
    if (q->owner->closed_) return;
    mail::AddressResult r;
    std::vector<std::string> v4;
    for (ares_addrinfo_node* n = res ? res->nodes : nullptr; n; n = n->ai_next) {
      char buf[INET6_ADDRSTRLEN] = {};
      if (n->ai_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr, buf, sizeof buf);
      } else if (n->ai_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr, buf, sizeof buf);
      } else {
        continue;
      }
      std::vector<std::string>& list = n->ai_family == AF_INET6 ? r.addresses : v4;
      if (std::find(list.begin(), list.end(), buf) == list.end()) list.push_back(buf);
    }
    r.addresses.insert(r.addresses.end(), v4.begin(), v4.end());  // IPv6 first, then IPv4
    if (status == ARES_SUCCESS && r.addresses.empty()) status = ARES_ENODATA;
    r.status = status_of(status);
    if (r.status != mail::DnsStatus::Ok) r.error = ares_strerror(status);
    q->owner->answer(std::move(q->done), std::move(r));
  }

  // c-ares opened, changed or closed (neither readable nor writable) a socket. It calls this
  // before closing the descriptor, so a poll never outlives its socket.
  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Ares*>(data);
    auto it = self->polls_.find(fd);
    if (!readable && !writable) {
      if (it != self->polls_.end()) {
        close_and_free(it->second);
        self->polls_.erase(it);
      }
      return;
    }
    Poll* p = it != self->polls_.end() ? it->second : nullptr;
    if (!p) {
      if (self->closed_) return;
      p = new Poll{};
      if (uv_poll_init_socket(self->loop_, &p->handle, fd) != 0) {
        delete p;  // never initialised; the lookup times out through the timer
        return;
      }
      p->handle.data = p;
      p->owner = self;
      p->fd = fd;
      // A socket never keeps the loop alive: while a lookup runs, the timer does.
      uv_unref(reinterpret_cast<uv_handle_t*>(&p->handle));
      self->polls_[fd] = p;
    }
    uv_poll_start(&p->handle, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
  }

  static void on_poll(uv_poll_t* h, int status, int events) {
    auto* p = static_cast<Poll*>(h->data);
    Ares* self = p->owner;
    ares_socket_t fd = p->fd;  // p may be closed inside ares_process_fd
    // On a poll error, let c-ares read and write so that it sees the socket's error itself.
    bool error = status < 0;
    ares_process_fd(self->channel_, error || (events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
                    error || (events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
    self->rearm();
  }

  static void on_timer(uv_timer_t* t) {
    auto* self = static_cast<Ares*>(t->data);
    ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // expires timed-out tries
    self->rearm();
  }

  // Arms the timer for c-ares's next timeout, or stops it when nothing is in flight (an idle
  // resolver keeps the loop alive through no handle at all).
  void rearm() {
    if (closed_) return;
    timeval tv{};
    if (!ares_timeout(channel_, nullptr, &tv)) {
      uv_timer_stop(timer_);
      return;
    }
    // Rounded up: a timer that fires before c-ares's deadline would only spin.
    auto ms = static_cast<std::uint64_t>(tv.tv_sec) * 1000 + static_cast<std::uint64_t>(tv.tv_usec + 999) / 1000;
    uv_timer_start(timer_, on_timer, ms, 0);
  }

  uv_loop_t* loop_;
  ares_channel channel_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  std::map<ares_socket_t, Poll*> polls_;
  Deferred deferred_;
  bool closed_ = false;
  bool dnssec_ = false;
  std::minstd_rand ids_{std::random_device{}()};  // query IDs (c-ares picks its own as well)
};

class AresResolver final : public mail::Resolver {
 public:
  explicit AresResolver(std::shared_ptr<Ares> core) : core_(std::move(core)) {}
  ~AresResolver() override { core_->close(); }
  void mx(std::string_view domain, std::function<void(mail::MxResult)> done) override {
    core_->mx(domain, std::move(done));
  }
  void addresses(std::string_view host, std::function<void(mail::AddressResult)> done) override {
    core_->addresses(host, std::move(done));
  }
  void txt(std::string_view name, std::function<void(mail::TxtResult)> done) override {
    core_->txt(name, std::move(done));
  }
  void tlsa(std::string_view name, std::function<void(mail::TlsaResult)> done) override {
    core_->tlsa(name, std::move(done));
  }

 private:
  std::shared_ptr<Ares> core_;
};

// The static tables, keyed by lower-case name without the trailing dot.
class StaticTables {
 public:
  StaticTables(uv_loop_t* loop, StaticZone zone) : otherwise_(std::move(zone.otherwise)), deferred_(loop) {
    for (auto& [name, r] : zone.mx) mx_[key(name)] = std::move(r);
    for (auto& [name, r] : zone.addresses) addresses_[key(name)] = std::move(r);
    for (auto& [name, r] : zone.txt) txt_[key(name)] = std::move(r);
    for (auto& [name, r] : zone.tlsa) tlsa_[key(name)] = std::move(r);
  }

  void mx(std::string_view domain, std::function<void(mail::MxResult)> done) {
    const std::string name = key(domain);
    mail::MxResult r = find(mx_, name);
    if (otherwise_ && unknown(name)) r = {mail::DnsStatus::NoData, {}, "no MX records for " + name, false};
    deferred_.push([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  void addresses(std::string_view host, std::function<void(mail::AddressResult)> done) {
    std::string name = without_trailing_dot(host);
    std::optional<mail::AddressResult> literal = numeric_address(name);
    mail::AddressResult r = literal ? std::move(*literal) : find(addresses_, key(name));
    if (!literal && otherwise_ && unknown(key(name))) r = *otherwise_;
    deferred_.push([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  // Names only in the MX or address tables exist: NoData; names in none: NxDomain (also
  // with `otherwise`, which is an address rule).
  void txt(std::string_view name_in, std::function<void(mail::TxtResult)> done) {
    mail::TxtResult r = find(txt_, key(name_in));
    deferred_.push([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  void tlsa(std::string_view name_in, std::function<void(mail::TlsaResult)> done) {
    mail::TlsaResult r = find(tlsa_, key(name_in));
    deferred_.push([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }

  void close() { deferred_.close(); }

 private:
  static std::string key(std::string_view name) { return proto::ascii_lower(without_trailing_dot(name)); }
  // In no table: StaticZone::otherwise answers for it (MX and addresses), when given.
  bool unknown(const std::string& name) const {
    return !mx_.count(name) && !addresses_.count(name) && !txt_.count(name) && !tlsa_.count(name);
  }

  // The entry in `table`; NoData when the name is only in another table; NxDomain otherwise.
  template <typename R>
  R find(const std::map<std::string, R>& table, const std::string& name) const {
    if (auto it = table.find(name); it != table.end()) return it->second;
    R r;
    r.status = unknown(name) ? mail::DnsStatus::NxDomain : mail::DnsStatus::NoData;
    r.error = std::string(r.status == mail::DnsStatus::NoData ? "no records of that type for " : "no such name ") + name;
    return r;
  }

  std::map<std::string, mail::MxResult> mx_;
  std::map<std::string, mail::AddressResult> addresses_;
  std::map<std::string, mail::TxtResult> txt_;
  std::map<std::string, mail::TlsaResult> tlsa_;
  std::optional<mail::AddressResult> otherwise_;
  Deferred deferred_;
};

class StaticResolver final : public mail::Resolver {
 public:
  explicit StaticResolver(std::shared_ptr<StaticTables> tables) : tables_(std::move(tables)) {}
  ~StaticResolver() override { tables_->close(); }
  void mx(std::string_view domain, std::function<void(mail::MxResult)> done) override {
    tables_->mx(domain, std::move(done));
  }
  void addresses(std::string_view host, std::function<void(mail::AddressResult)> done) override {
    tables_->addresses(host, std::move(done));
  }
  void txt(std::string_view name, std::function<void(mail::TxtResult)> done) override {
    tables_->txt(name, std::move(done));
  }
  void tlsa(std::string_view name, std::function<void(mail::TlsaResult)> done) override {
    tables_->tlsa(name, std::move(done));
  }

 private:
  std::shared_ptr<StaticTables> tables_;
};

}  // namespace

std::optional<std::string> parse_name_server(std::string_view server) { return server_entry(server); }

Result<std::unique_ptr<mail::Resolver>> make_resolver(Runtime& runtime, const ResolverOptions& options) {
  auto core = std::make_shared<Ares>(loop_of(runtime));
  if (Status st = core->start(options); !st.ok()) return st;  // ~Ares closes what started
  runtime.at_shutdown([weak = std::weak_ptr<Ares>(core)] {
    if (auto c = weak.lock()) c->close();
  });
  return std::unique_ptr<mail::Resolver>(new AresResolver(std::move(core)));
}

std::unique_ptr<mail::Resolver> make_static_resolver(Runtime& runtime, StaticZone zone) {
  auto tables = std::make_shared<StaticTables>(loop_of(runtime), std::move(zone));
  runtime.at_shutdown([weak = std::weak_ptr<StaticTables>(tables)] {
    if (auto t = weak.lock()) t->close();
  });
  return std::make_unique<StaticResolver>(std::move(tables));
}

}  // namespace cmail::net
