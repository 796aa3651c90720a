// The directory: users, addresses, origination and POP ACLs, API permissions, in the original's
// tables (docs/compatibility.md#database-tables).
#include "store_impl.h"

#include <cmail/base64.h>
#include <cmail/crypto/crypto.h>
#include <cmail/store/password.h>

#include <algorithm>
#include <mutex>

namespace cmail::store {

using detail::Connection;
using detail::SqlError;
using detail::Stmt;

const std::vector<std::string>& inbound_routers() {
  static const std::vector<std::string> k{"store", "redirect", "handoff", "reject", "drop"};
  return k;
}
const std::vector<std::string>& outbound_routers() {
  static const std::vector<std::string> k{"any", "defined", "handoff", "reject", "drop"};
  return k;
}
bool is_inbound_router(std::string_view name) {
  const auto& k = inbound_routers();
  return std::find(k.begin(), k.end(), name) != k.end();
}
bool is_outbound_router(std::string_view name) {
  const auto& k = outbound_routers();
  return std::find(k.begin(), k.end(), name) != k.end();
}

namespace {

bool is_space_or_control(unsigned char c) { return c <= 0x20 || c == 0x7f; }

Status check_router(std::string_view router, bool inbound) {
  if (inbound ? is_inbound_router(router) : is_outbound_router(router)) return Status();
  std::string valid;
  for (const auto& r : inbound ? inbound_routers() : outbound_routers()) valid += (valid.empty() ? "" : ", ") + r;
  return Status::invalid_argument("unknown router '" + std::string(router) + "' (valid: " + valid + ")");
}

std::optional<std::string> opt(std::optional<std::string_view> v) {
  return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
}

bool user_exists(Connection& c, std::string_view name) {
  Stmt s = c.prepare("SELECT 1 FROM users WHERE user_name = ?1");
  s.bind(1, name);
  bool found = s.step();
  s.run();
  return found;
}

void require_user(Connection& c, std::string_view name) {
  if (!user_exists(c, name)) throw SqlError{Status::not_found("no such user '" + std::string(name) + "'")};
}

Address read_address(const Stmt& s) {
  return Address{s.int64(0), s.text(1), s.text(2), s.opt_text(3)};
}

constexpr const char* kAddressColumns = "address_order, address_expression, address_router, address_route";

constexpr std::size_t kScramSaltOctets = 16;

// A password's SCRAM credentials with a new salt; nullopt when SASLprep cannot prepare it
// (docs/scram.md#saslprep) or no salt could be made.
std::optional<sasl::ScramCredentials> new_scram(std::string_view password) {
  auto salt = crypto::random_bytes(kScramSaltOctets);
  if (!salt) return std::nullopt;
  return sasl::scram_derive(password, *salt, sasl::kScramIterations);  // ~5 ms: off the writer
}

// Inserts (or replaces) the user's row; with `only_if_authdata`, only while user_authdata still
// holds that value (the password the credentials were made from is still the user's).
void store_scram(Connection& c, const std::string& user, const sasl::ScramCredentials& s,
                 const std::optional<std::string>& only_if_authdata = std::nullopt) {
  c.prepare(
       "INSERT OR REPLACE INTO scram (scram_user, scram_salt, scram_iterations, scram_stored_key, scram_server_key) "
       "SELECT ?1, ?2, ?3, ?4, ?5 WHERE ?6 IS NULL OR EXISTS "
       "(SELECT 1 FROM users WHERE user_name = ?1 AND user_authdata = ?6)")
      .bind(1, user)
      .bind(2, base64_encode(s.salt))
      .bind(3, static_cast<std::int64_t>(s.iterations))
      .bind(4, base64_encode(s.stored_key))
      .bind(5, base64_encode(s.server_key))
      .bind(6, only_if_authdata)
      .run();
}

class DirectoryImpl final : public Directory {
 public:
  explicit DirectoryImpl(Store::Impl& impl) : impl_(impl) {}

  // Users.
  Result<std::optional<User>> find_user(std::string_view name) override {
    std::optional<User> out;
    Status st = impl_.read(
        [&](Connection& c) {
          Stmt s = c.prepare(
              "SELECT user_name, user_authdata, user_database, user_alias FROM users WHERE user_name = ?1");
          s.bind(1, name);
          if (s.step()) out = User{s.text(0), s.opt_text(1), s.opt_text(2), s.opt_text(3)};
          s.run();
        },
        true);
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<UserSummary>> list_users(std::string_view like) override {
    std::vector<UserSummary> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(
          "SELECT user_name, user_authdata, user_database, user_alias, "
          "(SELECT COUNT(*) FROM addresses WHERE address_router = 'store' AND address_route = user_name), "
          "(SELECT COUNT(*) FROM mailbox WHERE mail_user = user_name) "
          "FROM users WHERE user_name LIKE ?1 ORDER BY user_name");
      s.bind(1, like);
      while (s.step())
        out.push_back({User{s.text(0), s.opt_text(1), s.opt_text(2), s.opt_text(3)}, s.int64(4), s.int64(5)});
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<Identity> authenticate(std::string_view user, std::string_view password) override {
    const Status failed = Status::not_found("authentication failed");
    auto u = find_user(user);
    if (!u) return u.error();
    if (!*u || !(*u)->authdata || !verify_password(*(*u)->authdata, password)) return failed;
    const User& found = **u;
    if (password_needs_rehash(*found.authdata)) {
      // Replace a legacy (or weaker) hash now that the password is known, unless someone
      // changed it meanwhile, and make the SCRAM credentials with it (the trigger deleted any).
      // A failure here does not fail the login.
      auto fresh = hash_password(password);
      if (fresh) {
        std::string old = *found.authdata, name = found.name, value = *fresh;
        auto scram = new_scram(password);
        impl_.write([&](Connection& c) {
               const bool replaced =
                   c.prepare("UPDATE users SET user_authdata = ?1 WHERE user_name = ?2 AND user_authdata = ?3")
                       .bind(1, value)
                       .bind(2, name)
                       .bind(3, old)
                       .run() == 1;
               if (replaced && scram) store_scram(c, name, *scram);
             })
            .ok();
      }
    } else if (!has_scram(found.name)) {
      // A user from before SCRAM (or whose credentials a change of user_authdata removed while
      // the password stayed): make them now that the password is known, if it is still the one.
      if (auto scram = new_scram(password)) {
        std::string name = found.name, authdata = *found.authdata;
        impl_.write([&](Connection& c) { store_scram(c, name, *scram, authdata); }).ok();
      }
    }
    // One alias level (docs/compatibility.md#users-aliases).
    return Identity{found.name, found.alias.value_or(found.name)};
  }

  Status add_user(std::string_view name, std::optional<std::string_view> password) override {
    if (Status v = validate_user_name(name); !v.ok()) return v;
    auto authdata = hashed(password);
    if (!authdata) return authdata.error();
    auto scram = *authdata ? new_scram(*password) : std::nullopt;
    std::string n(name);
    return impl_.write([&](Connection& c) {
      if (user_exists(c, n)) throw SqlError{Status::already_exists("user '" + n + "' already exists")};
      c.prepare("INSERT INTO users (user_name, user_authdata) VALUES (?1, ?2)").bind(1, n).bind(2, *authdata).run();
      if (scram) store_scram(c, n, *scram);
    });
  }

  Status set_password(std::string_view name, std::optional<std::string_view> password) override {
    auto authdata = hashed(password);
    if (!authdata) return authdata.error();
    auto scram = *authdata ? new_scram(*password) : std::nullopt;
    std::string n(name);
    return impl_.write([&](Connection& c) {
      // The trigger scram_password_changed deletes the old credentials; the new ones follow.
      if (c.prepare("UPDATE users SET user_authdata = ?2 WHERE user_name = ?1").bind(1, n).bind(2, *authdata).run() == 0)
        throw SqlError{Status::not_found("no such user '" + n + "'")};
      if (scram) store_scram(c, n, *scram);
    });
  }

  Result<sasl::ScramCredentials> scram_credentials(std::string_view user) override {
    std::optional<sasl::ScramCredentials> found;
    bool bad_row = false;
    Status st = impl_.read(
        [&](Connection& c) {
          Stmt s = c.prepare(
              "SELECT scram_salt, scram_iterations, scram_stored_key, scram_server_key FROM scram "
              "JOIN users ON user_name = scram_user WHERE scram_user = ?1 AND user_authdata IS NOT NULL");
          s.bind(1, user);
          if (s.step()) {
            auto salt = base64_decode(s.text(0));
            auto stored = base64_decode(s.text(2));
            auto server = base64_decode(s.text(3));
            const std::int64_t i = s.int64(1);
            if (salt && stored && server && i > 0 && i <= std::int64_t{sasl::kScramMaxIterations})
              found = sasl::ScramCredentials{*salt, static_cast<unsigned>(i), *stored, *server, true};
            else
              bad_row = true;
          }
          s.run();
        },
        true);
    if (!st.ok()) return st;
    if (bad_row) impl_.log("scram row of " + std::string(user) + " is malformed; taken as none");
    if (found) return *found;
    return sasl::scram_fake(fake_secret(), user);
  }

  Result<Identity> scram_identity(std::string_view user) override {
    auto u = find_user(user);
    if (!u) return u.error();
    if (!*u || !(*u)->authdata) return Status::not_found("authentication failed");
    return Identity{(*u)->name, (*u)->alias.value_or((*u)->name)};  // docs/compatibility.md#users-aliases
  }

  Status set_authdata(std::string_view name, std::optional<std::string_view> authdata) override {
    return update_user(name, "UPDATE users SET user_authdata = ?2 WHERE user_name = ?1", opt(authdata));
  }

  Status set_alias(std::string_view name, std::optional<std::string_view> target) override {
    std::optional<std::string> t = opt(target);
    // Aliasing to itself removes the alias (docs/compatibility.md#admin-tools-user).
    if (t && *t == name) t.reset();
    std::string n(name);
    return impl_.write([&](Connection& c) {
      require_user(c, n);
      if (t) require_user(c, *t);
      c.prepare("UPDATE users SET user_alias = ?2 WHERE user_name = ?1").bind(1, n).bind(2, t).run();
    });
  }

  Status set_user_database(std::string_view name, std::optional<std::string_view> path) override {
    std::optional<std::string> p = opt(path);
    if (p && p->size() <= 1) p.reset();  // docs/compatibility.md#admin-tools-user
    return update_user(name, "UPDATE users SET user_database = ?2 WHERE user_name = ?1", p);
  }

  Status delete_user(std::string_view name) override {
    std::string n(name);
    return impl_.write([&](Connection& c) {
      if (c.prepare("DELETE FROM users WHERE user_name = ?1").bind(1, n).run() == 0)
        throw SqlError{Status::not_found("no such user '" + n + "'")};
      impl_.note_mail_change();  // their master mail went with them (ON DELETE CASCADE)
    });
  }

  // Addresses.
  Result<std::vector<Address>> match_addresses(std::string_view path) override {
    return addresses(std::string("SELECT ") + kAddressColumns +
                         " FROM addresses WHERE ?1 LIKE address_expression ORDER BY address_order DESC",
                     path);
  }

  Result<std::optional<Address>> route_address(std::string_view path) override {
    auto all = addresses(std::string("SELECT ") + kAddressColumns +
                             " FROM addresses WHERE ?1 LIKE address_expression ORDER BY address_order DESC LIMIT 1",
                         path);
    if (!all) return all.error();
    if (all->empty()) return std::optional<Address>();
    return std::optional<Address>((*all)[0]);
  }

  Result<std::vector<Address>> list_addresses(std::string_view like) override {
    return addresses(std::string("SELECT ") + kAddressColumns +
                         " FROM addresses WHERE address_expression LIKE ?1 ORDER BY address_order DESC",
                     like);
  }

  Result<std::int64_t> add_address(std::string_view expression, std::string_view router,
                                   std::optional<std::string_view> route,
                                   std::optional<std::int64_t> order) override {
    if (Status v = validate_address_expression(expression); !v.ok()) return v;
    if (Status v = check_router(router, true); !v.ok()) return v;
    std::int64_t result = 0;
    std::string e(expression), r(router);
    auto rt = opt(route);
    Status st = impl_.write([&](Connection& c) {
      if (order) {
        Stmt s = c.prepare("SELECT 1 FROM addresses WHERE address_order = ?1");
        s.bind(1, *order);
        bool taken = s.step();
        s.run();
        if (taken) throw SqlError{Status::already_exists("address order " + std::to_string(*order) + " is taken")};
      }
      c.prepare("INSERT INTO addresses (address_expression, address_order, address_router, address_route) "
                "VALUES (?1, ?2, ?3, ?4)")
          .bind(1, e)
          .bind(2, order)
          .bind(3, r)
          .bind(4, rt)
          .run();
      result = c.last_insert_rowid();
    });
    if (!st.ok()) return st;
    return result;
  }

  Status update_address(std::int64_t order, std::string_view router,
                        std::optional<std::string_view> route) override {
    if (Status v = check_router(router, true); !v.ok()) return v;
    std::string r(router);
    auto rt = opt(route);
    return impl_.write([&](Connection& c) {
      int n = c.prepare("UPDATE addresses SET address_router = ?2, address_route = ?3 WHERE address_order = ?1")
                  .bind(1, order)
                  .bind(2, r)
                  .bind(3, rt)
                  .run();
      if (n == 0) throw SqlError{Status::not_found("no address with order " + std::to_string(order))};
    });
  }

  Status delete_address(std::int64_t order) override {
    return impl_.write([&](Connection& c) {
      if (c.prepare("DELETE FROM addresses WHERE address_order = ?1").bind(1, order).run() == 0)
        throw SqlError{Status::not_found("no address with order " + std::to_string(order))};
    });
  }

  Status swap_addresses(std::int64_t first, std::int64_t second) override {
    return impl_.write([&](Connection& c) {
      Stmt s = c.prepare("SELECT address_expression, address_router, address_route FROM addresses WHERE address_order = ?1");
      s.bind(1, first);
      if (!s.step()) throw SqlError{Status::not_found("no address with order " + std::to_string(first))};
      std::string expr = s.text(0), router = s.text(1);
      auto route = s.opt_text(2);
      s.run();
      // As the original (docs/compatibility.md#admin-tools-address): delete first, renumber second
      // to first, re-insert first's data as second.
      c.prepare("DELETE FROM addresses WHERE address_order = ?1").bind(1, first).run();
      c.prepare("UPDATE addresses SET address_order = ?1 WHERE address_order = ?2").bind(1, first).bind(2, second).run();
      c.prepare("INSERT INTO addresses (address_expression, address_order, address_router, address_route) "
                "VALUES (?1, ?2, ?3, ?4)")
          .bind(1, expr)
          .bind(2, second)
          .bind(3, router)
          .bind(4, route)
          .run();
    });
  }

  // smtpd.
  Result<std::optional<SmtpdEntry>> find_smtpd(std::string_view user) override {
    auto all = smtpd("SELECT smtpd_user, smtpd_router, smtpd_route FROM smtpd WHERE smtpd_user = ?1", user);
    if (!all) return all.error();
    if (all->empty()) return std::optional<SmtpdEntry>();
    return std::optional<SmtpdEntry>((*all)[0]);
  }

  Result<std::vector<SmtpdEntry>> list_smtpd(std::string_view like) override {
    return smtpd("SELECT smtpd_user, smtpd_router, smtpd_route FROM smtpd WHERE smtpd_user LIKE ?1 ORDER BY smtpd_user", like);
  }

  Status enable_smtpd(std::string_view user, std::optional<std::string_view> router,
                      std::optional<std::string_view> route) override {
    if (router)
      if (Status v = check_router(*router, false); !v.ok()) return v;
    std::string u(user);
    auto r = opt(router);
    auto rt = opt(route);
    return impl_.write([&](Connection& c) {
      require_user(c, u);
      Stmt s = c.prepare("SELECT 1 FROM smtpd WHERE smtpd_user = ?1");
      s.bind(1, u);
      bool exists = s.step();
      s.run();
      if (exists) throw SqlError{Status::already_exists("user '" + u + "' already has an smtpd entry")};
      if (r) {
        c.prepare("INSERT INTO smtpd (smtpd_user, smtpd_router, smtpd_route) VALUES (?1, ?2, ?3)")
            .bind(1, u).bind(2, *r).bind(3, rt).run();
      } else {
        c.prepare("INSERT INTO smtpd (smtpd_user) VALUES (?1)").bind(1, u).run();  // router 'drop'
      }
    });
  }

  Status update_smtpd(std::string_view user, std::string_view router,
                      std::optional<std::string_view> route) override {
    if (Status v = check_router(router, false); !v.ok()) return v;
    std::string u(user), r(router);
    auto rt = opt(route);
    return impl_.write([&](Connection& c) {
      if (c.prepare("UPDATE smtpd SET smtpd_router = ?2, smtpd_route = ?3 WHERE smtpd_user = ?1")
              .bind(1, u).bind(2, r).bind(3, rt).run() == 0)
        throw SqlError{Status::not_found("no smtpd entry for '" + u + "'")};
    });
  }

  Status disable_smtpd(std::string_view user) override {
    return delete_one("DELETE FROM smtpd WHERE smtpd_user = ?1", user, "no smtpd entry for '");
  }

  // DKIM keys.
  Result<std::vector<DkimKey>> dkim_keys(std::string_view domain) override {
    return dkim("SELECT dkim_domain, dkim_selector, dkim_algorithm, dkim_private_key, dkim_created FROM dkim_keys "
                "WHERE dkim_domain = lower(?1) ORDER BY dkim_selector",
                domain);
  }
  Result<std::vector<DkimKey>> list_dkim_keys(std::string_view like) override {
    return dkim("SELECT dkim_domain, dkim_selector, dkim_algorithm, dkim_private_key, dkim_created FROM dkim_keys "
                "WHERE dkim_domain LIKE ?1 ORDER BY dkim_domain, dkim_selector",
                like);
  }
  Status add_dkim_key(const DkimKey& k) override {
    if (k.domain.empty() || k.selector.empty()) return Status::invalid_argument("a DKIM key needs a domain and a selector");
    if (k.algorithm != "rsa-sha256" && k.algorithm != "ed25519-sha256")
      return Status::invalid_argument("unknown DKIM algorithm '" + k.algorithm + "'");
    return impl_.write([&](Connection& c) {
      Stmt s = c.prepare("SELECT 1 FROM dkim_keys WHERE dkim_domain = lower(?1) AND dkim_selector = ?2");
      s.bind(1, k.domain).bind(2, k.selector);
      const bool exists = s.step();
      s.run();
      if (exists)
        throw SqlError{Status::already_exists("'" + k.domain + "' already has a DKIM key with selector '" + k.selector + "'")};
      c.prepare("INSERT INTO dkim_keys (dkim_domain, dkim_selector, dkim_algorithm, dkim_private_key, dkim_created) "
                "VALUES (lower(?1), ?2, ?3, ?4, ?5)")
          .bind(1, k.domain).bind(2, k.selector).bind(3, k.algorithm).bind(4, k.private_key).bind(5, k.created)
          .run();
    });
  }
  Status delete_dkim_key(std::string_view domain, std::string_view selector) override {
    std::string d(domain), sel(selector);
    return impl_.write([&](Connection& c) {
      if (c.prepare("DELETE FROM dkim_keys WHERE dkim_domain = lower(?1) AND dkim_selector = ?2").bind(1, d).bind(2, sel).run() == 0)
        throw SqlError{Status::not_found("'" + d + "' has no DKIM key with selector '" + sel + "'")};
    });
  }

  // DMARC policies.
  Result<AuthPolicy> auth_policy(std::string_view domain) override {
    std::optional<std::string> action;
    std::string d(domain);
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT policy_action FROM auth_policy WHERE policy_domain IN (lower(?1), '*') "
                         "ORDER BY policy_domain = '*' LIMIT 1");
      s.bind(1, d);
      if (s.step()) action = s.text(0);
    });
    if (!st.ok()) return st;
    return action == "enforce" ? AuthPolicy::Enforce : AuthPolicy::Report;
  }
  Result<std::vector<std::pair<std::string, AuthPolicy>>> list_auth_policies() override {
    std::vector<std::pair<std::string, AuthPolicy>> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare("SELECT policy_domain, policy_action FROM auth_policy ORDER BY policy_domain");
      while (s.step()) out.emplace_back(s.text(0), s.text(1) == "enforce" ? AuthPolicy::Enforce : AuthPolicy::Report);
    });
    if (!st.ok()) return st;
    return out;
  }
  Status set_auth_policy(std::string_view domain, std::optional<AuthPolicy> policy) override {
    if (domain.empty()) return Status::invalid_argument("a policy needs a domain (or '*')");
    std::string d(domain);
    return impl_.write([&](Connection& c) {
      if (!policy) {
        if (c.prepare("DELETE FROM auth_policy WHERE policy_domain = lower(?1)").bind(1, d).run() == 0)
          throw SqlError{Status::not_found("no policy for '" + d + "'")};
        return;
      }
      c.prepare("INSERT OR REPLACE INTO auth_policy (policy_domain, policy_action) VALUES (lower(?1), ?2)")
          .bind(1, d).bind(2, std::string(*policy == AuthPolicy::Enforce ? "enforce" : "report"))
          .run();
    });
  }

  // imapd.
  Result<std::optional<ImapdEntry>> find_imapd(std::string_view user) override {
    auto all = imapd("SELECT imap_user FROM imapd WHERE imap_user = ?1", user);
    if (!all) return all.error();
    if (all->empty()) return std::optional<ImapdEntry>();
    return std::optional<ImapdEntry>((*all)[0]);
  }
  Result<std::vector<ImapdEntry>> list_imapd(std::string_view like) override {
    return imapd("SELECT imap_user FROM imapd WHERE imap_user LIKE ?1 ORDER BY imap_user", like);
  }
  Status enable_imapd(std::string_view user) override {
    std::string u(user);
    return impl_.write([&](Connection& c) {
      require_user(c, u);
      Stmt s = c.prepare("SELECT 1 FROM imapd WHERE imap_user = ?1");
      s.bind(1, u);
      bool exists = s.step();
      s.run();
      if (exists) throw SqlError{Status::already_exists("IMAP is already enabled for '" + u + "'")};
      c.prepare("INSERT INTO imapd (imap_user) VALUES (?1)").bind(1, u).run();
    });
  }
  Status disable_imapd(std::string_view user) override {
    return delete_one("DELETE FROM imapd WHERE imap_user = ?1", user, "no imapd entry for '");
  }

  // popd.
  Result<std::optional<PopdEntry>> find_popd(std::string_view user) override {
    auto all = popd("SELECT pop_user, pop_lock FROM popd WHERE pop_user = ?1", user);
    if (!all) return all.error();
    if (all->empty()) return std::optional<PopdEntry>();
    return std::optional<PopdEntry>((*all)[0]);
  }
  Result<std::vector<PopdEntry>> list_popd(std::string_view like) override {
    return popd("SELECT pop_user, pop_lock FROM popd WHERE pop_user LIKE ?1 ORDER BY pop_user", like);
  }
  Status enable_popd(std::string_view user) override {
    std::string u(user);
    return impl_.write([&](Connection& c) {
      require_user(c, u);
      Stmt s = c.prepare("SELECT 1 FROM popd WHERE pop_user = ?1");
      s.bind(1, u);
      bool exists = s.step();
      s.run();
      if (exists) throw SqlError{Status::already_exists("POP3 is already enabled for '" + u + "'")};
      c.prepare("INSERT INTO popd (pop_user) VALUES (?1)").bind(1, u).run();
    });
  }
  Status disable_popd(std::string_view user) override {
    return delete_one("DELETE FROM popd WHERE pop_user = ?1", user, "no popd entry for '");
  }
  Status unlock_popd(std::string_view user) override {
    return delete_one("UPDATE popd SET pop_lock = 0, pop_lock_owner = NULL, pop_lock_time = NULL WHERE pop_user = ?1",
                      user, "no popd entry for '");
  }
  Result<PopLock> lock_popd(
      std::string_view user, std::string_view owner,
      const std::function<bool(const std::optional<std::string>&)>& holder_gone) override {
    std::string u(user), o(owner);
    PopLock result;
    Status st = impl_.write([&](Connection& c) {
      result = PopLock{};
      Stmt s = c.prepare("SELECT pop_lock, pop_lock_owner FROM popd WHERE pop_user = ?1");
      s.bind(1, u);
      if (!s.step()) return;  // NotEnabled: no popd row (docs/compatibility.md#pop3-the-popd-table)
      const bool locked = s.int64(0) != 0;
      std::optional<std::string> holder = s.opt_text(1);
      s.run();
      if (locked) {
        result.previous = holder;
        if (!holder_gone(holder)) {
          result.outcome = PopLock::Outcome::InUse;
          return;
        }
        result.taken_over = true;
      }
      c.prepare("UPDATE popd SET pop_lock = 1, pop_lock_owner = ?2, pop_lock_time = ?3 WHERE pop_user = ?1")
          .bind(1, u)
          .bind(2, o)
          .bind(3, detail::unix_now())
          .run();
      result.outcome = PopLock::Outcome::Locked;
    });
    if (!st.ok()) return st;
    return result;
  }
  Status release_popd(std::string_view user, std::string_view owner) override {
    std::string u(user), o(owner);
    return impl_.write([&](Connection& c) {
      c.prepare("UPDATE popd SET pop_lock = 0, pop_lock_owner = NULL, pop_lock_time = NULL "
                "WHERE pop_user = ?1 AND pop_lock_owner = ?2")
          .bind(1, u)
          .bind(2, o)
          .run();
    });
  }

  // API permissions and delegations.
  Result<std::vector<Permission>> list_permissions(std::string_view user_like) override {
    return pairs<Permission>("SELECT api_user, api_permission FROM api_access WHERE api_user LIKE ?1 ORDER BY 1, 2", user_like);
  }
  Result<std::vector<Permission>> list_permission_holders(std::string_view perm_like) override {
    return pairs<Permission>("SELECT api_user, api_permission FROM api_access WHERE api_permission LIKE ?1 ORDER BY 1, 2", perm_like);
  }
  Status grant(std::string_view user, std::string_view permission) override {
    return insert_pair("INSERT INTO api_access (api_user, api_permission) VALUES (?1, ?2)", user, permission,
                       "already has permission");
  }
  Status revoke(std::string_view user, const std::vector<std::string>& permissions) override {
    std::string u(user);
    return impl_.write([&](Connection& c) {
      int n = 0;
      if (permissions.empty()) {
        n = c.prepare("DELETE FROM api_access WHERE api_user = ?1").bind(1, u).run();
      } else {
        for (const std::string& p : permissions)
          n += c.prepare("DELETE FROM api_access WHERE api_user = ?1 AND api_permission = ?2").bind(1, u).bind(2, p).run();
      }
      if (n == 0) throw SqlError{Status::not_found("User not found or user doesn't have this permission.")};
    });
  }
  Result<std::vector<Delegation>> list_user_delegates(std::string_view user_like) override {
    return pairs<Delegation>("SELECT api_user, api_delegate FROM api_user_delegates WHERE api_user LIKE ?1 ORDER BY 1, 2", user_like);
  }
  Result<std::vector<Delegation>> list_address_delegates(std::string_view user_like) override {
    return pairs<Delegation>("SELECT api_user, api_expression FROM api_address_delegates WHERE api_user LIKE ?1 ORDER BY 1, 2", user_like);
  }
  Status delegate_user(std::string_view user, std::string_view delegate) override {
    std::string d(delegate);
    return insert_pair("INSERT INTO api_user_delegates (api_user, api_delegate) VALUES (?1, ?2)", user, delegate,
                       "already has the delegated user", &d);
  }
  Status delegate_address(std::string_view user, std::string_view expression) override {
    if (Status v = validate_address_expression(expression); !v.ok()) return v;
    return insert_pair("INSERT INTO api_address_delegates (api_user, api_expression) VALUES (?1, ?2)", user,
                       expression, "already has the delegated address space");
  }
  Status undelegate_user(std::string_view user, std::string_view delegate) override {
    return delete_pair("DELETE FROM api_user_delegates WHERE api_user = ?1 AND api_delegate = ?2", user, delegate);
  }
  Status undelegate_address(std::string_view user, std::string_view expression) override {
    return delete_pair("DELETE FROM api_address_delegates WHERE api_user = ?1 AND api_expression = ?2", user, expression);
  }

 private:
  bool has_scram(const std::string& user) {
    bool found = true;  // when the read fails, make nothing
    impl_.read(
            [&](Connection& c) {
              Stmt s = c.prepare("SELECT 1 FROM scram WHERE scram_user = ?1");
              s.bind(1, user);
              found = s.step();
              s.run();
            },
            true)
        .ok();
    return found;
  }

  // The key of made-up SCRAM credentials: meta.scram_secret, 32 random octets made on first
  // use, so that every process serving this database makes the same ones.
  std::string fake_secret() {
    std::lock_guard lock(secret_mu_);
    if (!secret_.empty()) return secret_;
    auto read_secret = [&] {
      std::optional<std::string> v;
      impl_.read(
              [&](Connection& c) {
                Stmt s = c.prepare("SELECT value FROM meta WHERE key = 'scram_secret'");
                if (s.step()) v = s.text(0);
                s.run();
              },
              true)
          .ok();
      return v ? base64_decode(*v) : std::nullopt;
    };
    auto secret = read_secret();
    if (!secret || secret->size() < 16) {
      if (auto fresh = crypto::random_bytes(32)) {
        std::string value = base64_encode(*fresh);
        impl_.write([&](Connection& c) {
               c.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('scram_secret', ?1)").bind(1, value).run();
             })
            .ok();
      }
      secret = read_secret();
    }
    // A read-only database without one: this process's own (fake salts then differ between
    // processes, but stay the same within one).
    secret_ = secret && secret->size() >= 16 ? *secret : sasl::scram_process_secret();
    return secret_;
  }

  std::mutex secret_mu_;
  std::string secret_;

  Result<std::optional<std::string>> hashed(std::optional<std::string_view> password) {
    if (!password || password->empty()) return std::optional<std::string>();
    auto h = hash_password(*password);  // before the write: ~30 ms of CPU off the writer
    if (!h) return h.error();
    return std::optional<std::string>(*h);
  }

  Status update_user(std::string_view name, const char* sql, const std::optional<std::string>& value) {
    std::string n(name);
    return impl_.write([&](Connection& c) {
      if (c.prepare(sql).bind(1, n).bind(2, value).run() == 0)
        throw SqlError{Status::not_found("no such user '" + n + "'")};
    });
  }

  Status delete_one(const char* sql, std::string_view user, const char* missing) {
    std::string u(user);
    return impl_.write([&](Connection& c) {
      if (c.prepare(sql).bind(1, u).run() == 0) throw SqlError{Status::not_found(missing + u + "'")};
    });
  }

  Status insert_pair(const char* sql, std::string_view user, std::string_view value, const char* dup,
                     const std::string* also_user = nullptr) {
    std::string u(user), v(value);
    return impl_.write([&](Connection& c) {
      require_user(c, u);
      if (also_user) require_user(c, *also_user);
      try {
        c.prepare(sql).bind(1, u).bind(2, v).run();
      } catch (const SqlError& e) {
        if (e.status.code() == Status::Code::AlreadyExists || e.status.code() == Status::Code::Constraint)
          throw SqlError{Status::already_exists("'" + u + "' " + dup + " '" + v + "'")};
        throw;
      }
    });
  }

  Status delete_pair(const char* sql, std::string_view user, std::string_view value) {
    std::string u(user), v(value);
    return impl_.write([&](Connection& c) {
      if (c.prepare(sql).bind(1, u).bind(2, v).run() == 0)
        throw SqlError{Status::not_found("no such delegation for '" + u + "'")};
    });
  }

  Result<std::vector<Address>> addresses(const std::string& sql, std::string_view arg) {
    std::vector<Address> out;
    Status st = impl_.read(
        [&](Connection& c) {
          Stmt s = c.prepare(sql);
          s.bind(1, arg);
          while (s.step()) out.push_back(read_address(s));
        },
        true);
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<SmtpdEntry>> smtpd(const char* sql, std::string_view arg) {
    std::vector<SmtpdEntry> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(sql);
      s.bind(1, arg);
      while (s.step()) out.push_back({s.text(0), s.text(1), s.opt_text(2)});
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<DkimKey>> dkim(const char* sql, std::string_view arg) {
    std::vector<DkimKey> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(sql);
      s.bind(1, arg);
      while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.int64(4)});
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<ImapdEntry>> imapd(const char* sql, std::string_view arg) {
    std::vector<ImapdEntry> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(sql);
      s.bind(1, arg);
      while (s.step()) out.push_back({s.text(0)});
    });
    if (!st.ok()) return st;
    return out;
  }

  Result<std::vector<PopdEntry>> popd(const char* sql, std::string_view arg) {
    std::vector<PopdEntry> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(sql);
      s.bind(1, arg);
      while (s.step()) out.push_back({s.text(0), s.int64(1) != 0});
    });
    if (!st.ok()) return st;
    return out;
  }

  template <typename T>
  Result<std::vector<T>> pairs(const char* sql, std::string_view arg) {
    std::vector<T> out;
    Status st = impl_.read([&](Connection& c) {
      Stmt s = c.prepare(sql);
      s.bind(1, arg);
      while (s.step()) out.push_back(T{s.text(0), s.text(1)});
    });
    if (!st.ok()) return st;
    return out;
  }

  Store::Impl& impl_;
};

}  // namespace

Status validate_address_expression(std::string_view e) {
  if (e.empty()) return Status::invalid_argument("an address expression cannot be empty");
  if (e.size() > 299) return Status::invalid_argument("address expression longer than 299 octets");
  int ats = 0;
  for (unsigned char c : e) {
    if (is_space_or_control(c))
      return Status::invalid_argument("address expression '" + std::string(e) + "' contains whitespace or control characters");
    if (c == '<' || c == '>')
      return Status::invalid_argument("address expression '" + std::string(e) + "' contains angle brackets (write the bare address)");
    ats += c == '@';
  }
  if (ats > 1) return Status::invalid_argument("address expression '" + std::string(e) + "' contains more than one '@'");
  return Status();
}

Status validate_user_name(std::string_view name) {
  if (name.empty()) return Status::invalid_argument("a user name cannot be empty");
  if (name.size() > 255) return Status::invalid_argument("user name longer than 255 octets");
  for (unsigned char c : name)
    if (is_space_or_control(c))
      return Status::invalid_argument("user name '" + std::string(name) + "' contains whitespace or control characters");
  return Status();
}

std::unique_ptr<Directory> detail::make_directory(Store::Impl& impl) {
  return std::make_unique<DirectoryImpl>(impl);
}

}  // namespace cmail::store
