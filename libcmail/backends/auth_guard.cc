// Failed log-ins counted per address, per (address, user) and per user: see
// cmail/backends/auth_guard.h.
#include <cmail/backends/auth_guard.h>

#include <cmail/proto/ascii.h>

#include <arpa/inet.h>

#include <algorithm>
#include <limits>

namespace cmail::backends {

namespace {

constexpr std::size_t kMaxUser = 128;  // longer names are counted by their first 128 octets

std::string user_key(std::string_view user) {
  return proto::ascii_lower(user.substr(0, std::min(user.size(), kMaxUser)));
}

}  // namespace

AuthGuard::AuthGuard(AuthGuardOptions options) : options_(options) {
  options_.max_entries = std::max<std::size_t>(options_.max_entries, 1);
}

std::string AuthGuard::address_key(std::string_view address) {
  const std::string a(address);
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.c_str(), &v6) != 1) return a;  // IPv4, or not an address at all
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char buf[INET6_ADDRSTRLEN] = {};
  if (std::equal(kMapped, kMapped + 12, v6.s6_addr)) {  // ::ffff:192.0.2.7 is 192.0.2.7
    inet_ntop(AF_INET, v6.s6_addr + 12, buf, sizeof buf);
    return buf;
  }
  std::fill(v6.s6_addr + 8, v6.s6_addr + 16, 0);  // the /64 prefix
  inet_ntop(AF_INET6, &v6, buf, sizeof buf);
  return std::string(buf) + "/64";
}

std::chrono::milliseconds AuthGuard::wait_for(std::uint32_t failures) const {
  if (failures == 0 || options_.delay.count() <= 0) return std::chrono::milliseconds(0);
  std::chrono::milliseconds w = options_.delay;
  for (std::uint32_t i = 1; i < failures && w < options_.max_delay; ++i) w *= 2;
  return std::min(w, options_.max_delay);
}

void AuthGuard::erase(std::unordered_map<std::string, Entry>::iterator it) {
  order_.erase(it->second.order);
  table_.erase(it);
}

std::uint32_t AuthGuard::count(const std::string& key, Clock::time_point now) {
  auto it = table_.find(key);
  if (it == table_.end()) return 0;
  if (now - it->second.last >= options_.forget) {
    erase(it);
    return 0;
  }
  return it->second.failures;
}

std::uint32_t AuthGuard::bump(const std::string& key, Clock::time_point now) {
  auto it = table_.find(key);
  if (it != table_.end() && now - it->second.last >= options_.forget) {
    erase(it);
    it = table_.end();
  }
  if (it == table_.end()) {
    // Room first: the forgotten ones at the old end, then, if still full, the least recent.
    auto oldest = [&] { return table_.find(*order_.back()); };
    while (!order_.empty() && now - oldest()->second.last >= options_.forget) erase(oldest());
    if (table_.size() >= options_.max_entries) erase(oldest());
    it = table_.emplace(key, Entry{}).first;
    order_.push_front(&it->first);
    it->second.order = order_.begin();
  } else {
    order_.splice(order_.begin(), order_, it->second.order);
  }
  Entry& e = it->second;
  const std::uint32_t before = e.failures;
  if (e.failures < std::numeric_limits<std::uint32_t>::max()) ++e.failures;
  e.last = now;
  return before;
}

void AuthGuard::subtract(const std::string& key, std::uint32_t n) {
  auto it = table_.find(key);
  if (it == table_.end()) return;
  if (it->second.failures <= n) return erase(it);
  it->second.failures -= n;
}

AuthGuard::Admission AuthGuard::admit(std::string_view address, std::string_view user, Clock::time_point now) {
  if (!options_.enabled) return {};
  const std::string a = address_key(address);
  std::lock_guard lock(mu_);
  const std::uint32_t by_address = count("a " + a, now);
  const std::uint32_t by_pair = count("p " + a + " " + user_key(user), now);
  Admission out;
  if (options_.address_failures && by_address >= options_.address_failures) out.refused = Refusal::Address;
  else if (options_.user_failures && by_pair >= options_.user_failures) out.refused = Refusal::User;
  else out.wait = wait_for(by_address);
  return out;
}

std::chrono::milliseconds AuthGuard::failed(std::string_view address, std::string_view user, Clock::time_point now) {
  if (!options_.enabled) return std::chrono::milliseconds(0);
  const std::string a = address_key(address), u = user_key(user);
  std::lock_guard lock(mu_);
  const std::uint32_t by_address = bump("a " + a, now);
  bump("p " + a + " " + u, now);
  const std::uint32_t by_user = bump("u " + u, now);
  // admit() already waited for the address's failures; the user name's, if more, wait here.
  return std::max(wait_for(by_user) - wait_for(by_address), std::chrono::milliseconds(0));
}

void AuthGuard::succeeded(std::string_view address, std::string_view user, Clock::time_point now) {
  if (!options_.enabled) return;
  const std::string a = address_key(address), u = user_key(user);
  std::lock_guard lock(mu_);
  const std::string pair = "p " + a + " " + u;
  const std::uint32_t n = count(pair, now);
  if (n == 0) return;
  subtract(pair, n);
  subtract("a " + a, n);
  subtract("u " + u, n);
}

std::string_view to_string(AuthGuard::Refusal r) {
  switch (r) {
    case AuthGuard::Refusal::Address:
      return "address";
    case AuthGuard::Refusal::User:
      return "user";
    case AuthGuard::Refusal::None:
      break;
  }
  return "none";
}

LogLine auth_log(std::string_view event, std::string_view proto, std::string_view address, std::string_view user) {
  LogLine l(event);
  l.add("proto", proto).add("addr", address).add("user", user);
  return l;
}

AuthGuard::Admission admit_attempt(AuthGuard* guard, std::string_view proto, std::string_view address,
                                   std::string_view user, const std::function<void(int, std::string_view)>& logger) {
  if (!guard) return {};
  AuthGuard::Admission a = guard->admit(address, user);
  if (a.refused != AuthGuard::Refusal::None && logger)
    logger(0, auth_log("auth blocked", proto, address, user)
                  .add("reason", "too-many-failures")
                  .add("scope", to_string(a.refused))
                  .str());
  return a;
}

void run_after(const proto::Executor& ex, std::chrono::milliseconds wait, std::function<void()> fn) {
  if (wait.count() > 0 && ex.post_after) return ex.post_after(wait, std::move(fn));
  fn();
}

std::size_t AuthGuard::entries() const {
  std::lock_guard lock(mu_);
  return table_.size();
}

}  // namespace cmail::backends
