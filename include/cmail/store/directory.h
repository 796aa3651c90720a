// cmail/store/directory.h: who exists and who may do what, from the master database.
//
// Users and credentials, address expressions and their routers, the smtpd origination table, the
// popd and imapd tables and the API permissions and delegations, with the original's meanings
// (docs/compatibility.md#users-and-authentication, docs/compatibility.md#routing). Reads run on a
// pooled read connection and see the latest commit; writes go through the Store's writer, one
// transaction each, and return after the commit.
//
// Validation happens before anything is written: a bad name, an unknown router or a malformed
// address expression returns InvalidArgument and changes nothing; an unknown user returns
// NotFound.
//
// Thread-safety: every method may be called from any thread. Obtain it from Store::directory();
// it lives as long as the Store.
#pragma once

#include <cmail/export.h>
#include <cmail/proto/scram.h>
#include <cmail/status.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::store {

// Inbound routers (docs/compatibility.md#routing-inbound-routers) and outbound (origination)
// routers (docs/compatibility.md#routing-outbound-routers).
CMAIL_EXPORT const std::vector<std::string>& inbound_routers();   // store redirect handoff reject drop
CMAIL_EXPORT const std::vector<std::string>& outbound_routers();  // any defined handoff reject drop
CMAIL_EXPORT bool is_inbound_router(std::string_view name);
CMAIL_EXPORT bool is_outbound_router(std::string_view name);

// A syntax check for addresses.address_expression (an SQL LIKE pattern over paths): non-empty,
// at most 299 octets, no whitespace, control characters, angle brackets or more than one '@'.
CMAIL_EXPORT Status validate_address_expression(std::string_view expression);
// A syntax check for user names: non-empty, at most 255 octets, no whitespace or controls.
CMAIL_EXPORT Status validate_user_name(std::string_view name);

struct User {
  std::string name;
  std::optional<std::string> authdata;  // NULL = login disabled
  std::optional<std::string> database;  // per-user database path
  std::optional<std::string> alias;     // authorized-as target
};

struct UserSummary {
  User user;
  std::int64_t linked_addresses = 0;  // addresses rows: router store, route = user
  std::int64_t mails = 0;             // master mailbox rows
};

struct Address {
  std::int64_t order = 0;
  std::string expression;
  std::string router;
  std::optional<std::string> route;
};

struct SmtpdEntry {
  std::string user;
  std::string router;
  std::optional<std::string> route;
};

// One imapd row (schema version 13): the user may log in to cmail-imapd.
struct ImapdEntry {
  std::string user;
};

struct PopdEntry {
  std::string user;
  bool locked = false;
};

// The outcome of Directory::lock_popd().
struct PopLock {
  enum class Outcome { Locked, InUse, NotEnabled };
  Outcome outcome = Outcome::NotEnabled;
  bool taken_over = false;              // Locked, after the previous holder was found gone
  std::optional<std::string> previous;  // the holder found (InUse, or taken over); nullopt:
                                        // none recorded (cmail's pop_lock without an owner)
};

struct Permission {
  std::string user;
  std::string permission;
};

struct Delegation {
  std::string user;
  std::string target;  // the delegated user, or the address expression
};

// The outcome of authenticate(): who logged in and who they act as (one alias level).
struct Identity {
  std::string authenticated;
  std::string authorized;
};

// A DKIM signing key (table dkim_keys, schema version 14; docs/auth.md#dkim-signing).
struct DkimKey {
  std::string domain;       // d=, lower-case
  std::string selector;     // s=
  std::string algorithm;    // "rsa-sha256" or "ed25519-sha256"
  std::string private_key;  // PEM (cmail/crypto/keys.h): secret, never logged or printed
  std::int64_t created = 0;
};

// What intake does with mail failing DMARC for a recipient domain (table auth_policy).
enum class AuthPolicy { Report, Enforce };

// The lookups routing makes (cmail/store/routing.h): a user by name, the address rows a path
// matches, the winning one, a user's origination rule. Directory answers them from the
// database; Store::cached_lookups() from a cache in front of it.
class CMAIL_EXPORT DirectoryLookups {
 public:
  virtual ~DirectoryLookups() = default;
  virtual Result<std::optional<User>> find_user(std::string_view name) = 0;
  // Addresses (docs/compatibility.md#routing-address-matching): matches are ordered by
  // address_order, highest first.
  virtual Result<std::vector<Address>> match_addresses(std::string_view path) = 0;
  virtual Result<std::optional<Address>> route_address(std::string_view path) = 0;
  virtual Result<std::optional<SmtpdEntry>> find_smtpd(std::string_view user) = 0;
  // The DKIM keys of exactly `domain` (lower-case), by selector.
  virtual Result<std::vector<DkimKey>> dkim_keys(std::string_view domain) = 0;
  // The auth_policy row of `domain` (lower-case), else the "*" row, else Report.
  virtual Result<AuthPolicy> auth_policy(std::string_view domain) = 0;
};

// The routing lookups through a cache that all CachedLookups of one Store share, for a session
// that makes the same few lookups over and over (an SMTP transaction: MAIL and every RCPT). It
// answers as of its last refresh() or newer: every change to users, addresses or smtpd, by
// cmail or by any other program, bumps a counter in the master database (a trigger, schema
// version 12), and refresh() reads that counter; when it moved, the shared cache starts over
// (docs/store.md#the-directory-cache). Each map holds at most 4,096 entries and starts over
// when full, so that unknown addresses cannot grow it without bound.
//
// Thread-safety: one object per session, used by one thread at a time; the shared cache is
// guarded by a mutex. Obtain it from Store::cached_lookups(); the Store must outlive it.
class CMAIL_EXPORT CachedLookups : public DirectoryLookups {
 public:
  // One read of the directory generation. Until it succeeds, lookups go to the database.
  virtual Status refresh() = 0;
};

class CMAIL_EXPORT Directory : public DirectoryLookups {
 public:
  // Users.
  Result<std::optional<User>> find_user(std::string_view name) override = 0;
  virtual Result<std::vector<UserSummary>> list_users(std::string_view like = "%") = 0;
  // Verifies credentials (argon2id or legacy, docs/compatibility.md#users-password-verification).
  // A legacy hash is replaced by an argon2id one after a successful check. NotFound for an unknown
  // user, a disabled login or a wrong password alike (the caller cannot tell which). CPU-heavy:
  // call off the event loop.
  virtual Result<Identity> authenticate(std::string_view user, std::string_view password) = 0;
  // SCRAM-SHA-256 credentials (table scram, docs/scram.md) are made with the password by
  // add_user and set_password, by authenticate when it replaces a hash or finds the user has
  // none yet, and never by set_authdata; any change of user_authdata deletes them (a trigger).
  // A password SASLprep cannot prepare gets none (cmail/proto/scram.h).
  // Adds a user; `password` nullopt or empty = login disabled.
  virtual Status add_user(std::string_view name, std::optional<std::string_view> password) = 0;
  // Sets (nullopt or empty: disables) the password.
  virtual Status set_password(std::string_view name, std::optional<std::string_view> password) = 0;
  // The SCRAM credentials of `user`; when it has none (unknown, login disabled, no row), made-up
  // ones (known = false) from a secret kept in the database, the same on every call and in
  // every process, so that a client cannot tell (RFC 5802 5.1).
  virtual Result<sasl::ScramCredentials> scram_credentials(std::string_view user) = 0;
  // Who `user` is once it proved its SCRAM credentials (one alias level, as authenticate()).
  // NotFound when it no longer exists or its login is disabled.
  virtual Result<Identity> scram_identity(std::string_view user) = 0;
  // Stores a precomputed user_authdata value as is (for imports and tests).
  virtual Status set_authdata(std::string_view name, std::optional<std::string_view> authdata) = 0;
  // Sets the alias target; nullopt (or the user itself) removes it.
  virtual Status set_alias(std::string_view name, std::optional<std::string_view> target) = 0;
  // Sets the per-user database path; nullopt removes it. The file is not created.
  virtual Status set_user_database(std::string_view name, std::optional<std::string_view> path) = 0;
  virtual Status delete_user(std::string_view name) = 0;

  // Addresses (docs/compatibility.md#routing-address-matching): matches are ordered by
  // address_order, highest first.
  Result<std::vector<Address>> match_addresses(std::string_view path) override = 0;
  Result<std::optional<Address>> route_address(std::string_view path) override = 0;
  virtual Result<std::vector<Address>> list_addresses(std::string_view like = "%") = 0;
  // Adds a row; returns its order (given, or max+1). InvalidArgument for an unknown router
  // or a malformed expression; AlreadyExists for a taken order.
  virtual Result<std::int64_t> add_address(std::string_view expression, std::string_view router,
                                           std::optional<std::string_view> route,
                                           std::optional<std::int64_t> order) = 0;
  virtual Status update_address(std::int64_t order, std::string_view router,
                                std::optional<std::string_view> route) = 0;
  virtual Status delete_address(std::int64_t order) = 0;
  // Exchanges the orders of two rows; a missing second row just moves the first
  // (docs/compatibility.md#admin-tools-address).
  virtual Status swap_addresses(std::int64_t first, std::int64_t second) = 0;

  // smtpd origination table.
  Result<std::optional<SmtpdEntry>> find_smtpd(std::string_view user) override = 0;
  virtual Result<std::vector<SmtpdEntry>> list_smtpd(std::string_view like = "%") = 0;
  // Router nullopt = the column default ('drop').
  virtual Status enable_smtpd(std::string_view user, std::optional<std::string_view> router,
                              std::optional<std::string_view> route) = 0;
  virtual Status update_smtpd(std::string_view user, std::string_view router,
                              std::optional<std::string_view> route) = 0;
  virtual Status disable_smtpd(std::string_view user) = 0;

  // popd table.
  virtual Result<std::optional<PopdEntry>> find_popd(std::string_view user) = 0;
  virtual Result<std::vector<PopdEntry>> list_popd(std::string_view like = "%") = 0;
  virtual Status enable_popd(std::string_view user) = 0;
  virtual Status disable_popd(std::string_view user) = 0;
  // Clears a maildrop lock whoever holds it (cmail-admin popd unlock; emergencies only).
  virtual Status unlock_popd(std::string_view user) = 0;
  // Takes the POP3 maildrop lock of `user` for `owner` in one write transaction: pop_lock = 1
  // and the owner and time recorded. A lock held already is taken over when
  // holder_gone(recorded owner) says its holder is gone, else the outcome is InUse; a user
  // without a popd row gets NotEnabled. holder_gone runs inside the transaction, on the
  // writer thread. Blocking: call off the event loop.
  virtual Result<PopLock> lock_popd(
      std::string_view user, std::string_view owner,
      const std::function<bool(const std::optional<std::string>& holder)>& holder_gone) = 0;
  // Releases the lock if `owner` still holds it; does nothing after a take-over or an unlock.
  virtual Status release_popd(std::string_view user, std::string_view owner) = 0;

  // imapd table (docs/imapd.md#access): who may log in over IMAP. As for popd, enabling a user
  // who has a row is AlreadyExists, disabling one without is NotFound.
  virtual Result<std::optional<ImapdEntry>> find_imapd(std::string_view user) = 0;
  virtual Result<std::vector<ImapdEntry>> list_imapd(std::string_view like = "%") = 0;
  virtual Status enable_imapd(std::string_view user) = 0;
  virtual Status disable_imapd(std::string_view user) = 0;

  // API permissions and delegations.
  virtual Result<std::vector<Permission>> list_permissions(std::string_view user_like = "%") = 0;
  virtual Result<std::vector<Permission>> list_permission_holders(std::string_view perm_like) = 0;
  virtual Status grant(std::string_view user, std::string_view permission) = 0;
  // Revokes the listed permissions, or every permission of the user when the list is empty.
  // NotFound when nothing was revoked.
  virtual Status revoke(std::string_view user, const std::vector<std::string>& permissions) = 0;
  virtual Result<std::vector<Delegation>> list_user_delegates(std::string_view user_like = "%") = 0;
  virtual Result<std::vector<Delegation>> list_address_delegates(std::string_view user_like = "%") = 0;
  virtual Status delegate_user(std::string_view user, std::string_view delegate) = 0;
  virtual Status delegate_address(std::string_view user, std::string_view expression) = 0;
  virtual Status undelegate_user(std::string_view user, std::string_view delegate) = 0;
  virtual Status undelegate_address(std::string_view user, std::string_view expression) = 0;

  // DKIM keys (docs/auth.md#dkim-signing). Domains are stored lower-case; AlreadyExists for a
  // selector the domain has, NotFound for one it has not.
  virtual Result<std::vector<DkimKey>> list_dkim_keys(std::string_view domain_like = "%") = 0;
  virtual Status add_dkim_key(const DkimKey& key) = 0;
  virtual Status delete_dkim_key(std::string_view domain, std::string_view selector) = 0;

  // DMARC policies per recipient domain ("*": every other). nullopt removes the row.
  virtual Result<std::vector<std::pair<std::string, AuthPolicy>>> list_auth_policies() = 0;
  virtual Status set_auth_policy(std::string_view domain, std::optional<AuthPolicy> policy) = 0;
};

}  // namespace cmail::store
