// Store::cached_lookups(): the routing lookups through a cache shared by one Store, kept
// current by the directory generation (schema version 12: triggers on users, addresses and
// smtpd bump meta.directory_generation; version 14 adds dkim_keys and auth_policy;
// docs/store.md#the-directory-cache).
#include "store_impl.h"

#include <mutex>
#include <unordered_map>

namespace cmail::store {

namespace detail {

// What every CachedLookups of a Store shares. `generation` is the counter the entries were read
// under; -1 before the first refresh.
struct LookupCache {
  static constexpr std::size_t kMaxEntries = 4096;  // per map; a full map starts over

  std::mutex mu;
  std::int64_t generation = -1;
  std::unordered_map<std::string, std::optional<User>> users;
  std::unordered_map<std::string, std::vector<Address>> matches;
  std::unordered_map<std::string, std::optional<Address>> routes;
  std::unordered_map<std::string, std::optional<SmtpdEntry>> smtpd;
  std::unordered_map<std::string, std::vector<DkimKey>> dkim;
  std::unordered_map<std::string, AuthPolicy> policies;

  void clear() {
    users.clear();
    matches.clear();
    routes.clear();
    smtpd.clear();
    dkim.clear();
    policies.clear();
  }
};

std::shared_ptr<LookupCache> make_lookup_cache() { return std::make_shared<LookupCache>(); }

}  // namespace detail

namespace {

class CachedLookupsImpl final : public CachedLookups {
 public:
  CachedLookupsImpl(Store::Impl& impl, std::shared_ptr<detail::LookupCache> cache)
      : impl_(impl), cache_(std::move(cache)) {}

  Status refresh() override {
    std::optional<std::int64_t> generation;
    Status st = impl_.read(
        [&](detail::Connection& c) {
          detail::Stmt s = c.prepare("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'directory_generation'");
          if (s.step()) generation = s.int64(0);
          s.run();
        },
        true);
    generation_ = -1;
    if (!st.ok()) return st;
    if (!generation) return Status();  // a file without the counter: every lookup reads the database
    std::lock_guard lock(cache_->mu);
    if (cache_->generation != *generation) {
      cache_->clear();
      cache_->generation = *generation;
    }
    generation_ = *generation;
    return Status();
  }

  Result<std::optional<User>> find_user(std::string_view name) override {
    return lookup(&detail::LookupCache::users, name, [&] { return impl_.directory->find_user(name); });
  }
  Result<std::vector<Address>> match_addresses(std::string_view path) override {
    return lookup(&detail::LookupCache::matches, path, [&] { return impl_.directory->match_addresses(path); });
  }
  Result<std::optional<Address>> route_address(std::string_view path) override {
    return lookup(&detail::LookupCache::routes, path, [&] { return impl_.directory->route_address(path); });
  }
  Result<std::optional<SmtpdEntry>> find_smtpd(std::string_view user) override {
    return lookup(&detail::LookupCache::smtpd, user, [&] { return impl_.directory->find_smtpd(user); });
  }
  Result<std::vector<DkimKey>> dkim_keys(std::string_view domain) override {
    return lookup(&detail::LookupCache::dkim, domain, [&] { return impl_.directory->dkim_keys(domain); });
  }
  Result<AuthPolicy> auth_policy(std::string_view domain) override {
    return lookup(&detail::LookupCache::policies, domain, [&] { return impl_.directory->auth_policy(domain); });
  }

 private:
  // The cached answer for `key` when the cache is at this session's generation, else the
  // database's (kept when the cache still is: an answer read after the refresh is as new).
  template <typename T, typename Read>
  Result<T> lookup(std::unordered_map<std::string, T> detail::LookupCache::*map, std::string_view key, Read read) {
    if (generation_ < 0) return read();
    std::string k(key);
    {
      std::lock_guard lock(cache_->mu);
      if (cache_->generation == generation_) {
        auto& m = (*cache_).*map;
        if (auto it = m.find(k); it != m.end()) return it->second;
      }
    }
    Result<T> r = read();
    if (!r) return r;
    std::lock_guard lock(cache_->mu);
    if (cache_->generation == generation_) {
      auto& m = (*cache_).*map;
      if (m.size() >= detail::LookupCache::kMaxEntries) m.clear();
      m.emplace(std::move(k), *r);
    }
    return r;
  }

  Store::Impl& impl_;
  std::shared_ptr<detail::LookupCache> cache_;
  std::int64_t generation_ = -1;  // as of the last refresh(); -1: not refreshed, no cache
};

}  // namespace

std::unique_ptr<CachedLookups> Store::cached_lookups() {
  return std::make_unique<CachedLookupsImpl>(*impl_, impl_->lookup_cache);
}

}  // namespace cmail::store
