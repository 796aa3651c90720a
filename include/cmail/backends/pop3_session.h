// cmail/backends/pop3_session.h: the pop3::Session backed by the Store: what cmail-popd runs.
//
// StorePop3Session serves one POP3 connection from the master database: it checks the password
// with the Directory (argon2id; aliases resolve to their target,
// docs/compatibility.md#users-aliases), requires a popd row for the authorized user, locks the
// maildrop for this session (across processes, in popd.pop_lock; a lock whose holder died is taken
// over), lists INBOX as IMAP shows it (the master's rows and the user database's,
// Mailboxes::list_messages) and serves RETR/TOP from it. At QUIT it deletes the marked messages
// with one Mailboxes::expunge (one durable transaction) and releases the lock before the +OK; any
// other end releases the lock and deletes nothing.
//
// Maildrop lock holders are recorded as "host=H boot=B pid=P start=T session=S": the host
// name, /proc/sys/kernel/random/boot_id, the process id with its start time from
// /proc/PID/stat (so that a reused pid is not mistaken for the holder) and a random session
// id. A lock is taken over when its holder is on this host and from an earlier boot, or its
// process is gone, or it is this process and the session has ended; and when no holder is
// recorded (a lock left by the original cmail-popd, which cannot run on this schema). A lock
// held from another host stays until `cmail-admin popd unlock`. (docs/popd.md)
//
// UIDL: a message stored before schema version 11 keeps the unique-id the original showed
// (its mail_ident, when it is a valid unique-id and no message with a lower UID has the same
// one); every other message gets "UIDVALIDITY.UID" in decimal, which is unique in the folder
// and never reused because UIDs are not (RFC 9051 2.3.1.1).
//
// Authentication abuse: with an AuthGuard (cmail/backends/auth_guard.h), each login is admitted by
// it first (refused with -ERR [SYS/TEMP] without checking the password, or checked after the
// guard's wait) and its outcome counted; failures and refusals are logged at level 0 ("auth
// failed", "auth blocked", docs/logging.md), successes at level 1.
//
// Asynchrony, ownership and threads as for StoreSmtpSession (cmail/backends/smtp_session.h): blocking
// work goes through Executor::run_blocking, the answer comes back through Executor::post and
// reaches the engine through set_completion(). The destructor releases a lock still held, off
// the loop. REQUIRES: the Store outlives every function the session posted.
#pragma once

#include <cmail/backends/auth_guard.h>
#include <cmail/export.h>
#include <cmail/log_sink.h>
#include <cmail/pop3/server.h>
#include <cmail/proto/transport.h>
#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/process.h>
#include <cmail/store/store.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::backends {

// Who holds a maildrop lock (popd.pop_lock_owner): a process (cmail/store/process.h) and a session.
struct Pop3LockHolder : store::ProcessIdentity {
  std::string session;

  // This process, for a new session id.
  static Pop3LockHolder current(std::string session);
  static std::optional<Pop3LockHolder> parse(std::string_view text);
  std::string to_string() const;
};

// True when the recorded holder of a lock is certainly gone (see the header comment).
CMAIL_EXPORT bool pop3_lock_holder_gone(const std::optional<std::string>& holder);

// The maildrop listing of a folder snapshot: sizes from wire_size, unique-ids by the rule
// above. `messages` in UID order.
CMAIL_EXPORT std::vector<pop3::Listing> pop3_listing(std::uint32_t uidvalidity,
                                                     const std::vector<store::MessageInfo>& messages);

class CMAIL_EXPORT StorePop3Session final : public pop3::Session {
 public:
  // `guard` null: no counting, delays or refusals.
  StorePop3Session(store::Store& store, proto::PeerInfo peer, proto::Executor executor,
                   std::shared_ptr<AuthGuard> guard = nullptr);
  ~StorePop3Session() override;

  // How a pending verdict is delivered; called on the connection's thread.
  void set_completion(std::function<void(pop3::Verdict)> complete) { complete_ = std::move(complete); }
  // Where log lines go, with their level (0 errors and warnings, 1 info); called on the
  // connection's thread.
  void set_logger(LogSink logger) { logger_ = std::move(logger); }

  pop3::Verdict login(const sasl::Credentials& credentials) override;
  // SCRAM (docs/scram.md): the stored (or made-up) credentials off the loop, after the guard's
  // wait; then the maildrop, as login() takes it.
  pop3::Verdict scram_credentials(const std::string& authcid) override;
  pop3::Verdict scram_login(const sasl::ScramResult& result) override;
  pop3::Verdict retrieve(std::size_t index) override;
  pop3::Verdict update(const std::vector<std::size_t>& deleted) override;
  void log(std::string_view line) override;

  // The authorized user holding the maildrop, empty before login.
  const std::string& user() const { return user_; }

 private:
  // login()'s common part: the guard (unless `admitted`: SCRAM asked it at the lookup), `check`
  // and the maildrop on a worker, the verdict, log lines and the guard's count on the loop.
  pop3::Verdict check_login(const sasl::Credentials& creds, bool admitted,
                            std::function<Result<store::Identity>(store::Store&)> check);
  store::Store& store_;
  proto::PeerInfo peer_;
  proto::Executor executor_;
  std::function<void(pop3::Verdict)> complete_;
  LogSink logger_;
  std::shared_ptr<AuthGuard> guard_;
  std::shared_ptr<StorePop3Session*> alive_;  // guards posted work against a session that is gone

  std::string session_id_;
  std::string owner_;  // Pop3LockHolder::to_string() of this session
  std::string user_;
  bool locked_ = false;     // this session holds user_'s lock and must release it
  bool releasing_ = false;  // update() handed the release to its task
  std::vector<store::MessageRef> refs_;
  std::vector<std::uint64_t> sizes_;

  // Read-ahead for RETR/TOP: messages read but not yet asked for, at most one read in flight,
  // and the message a pending retrieve() waits for.
  void read_ahead(std::size_t first);
  // A message larger than this is not read ahead but streamed from its row (open_message).
  static constexpr std::uint64_t kStreamAbove = 256 * 1024;
  pop3::Verdict stream(std::size_t index);
  std::map<std::size_t, std::string> ahead_;
  bool reading_ = false;
  std::optional<std::size_t> waiting_;
};

}  // namespace cmail::backends
