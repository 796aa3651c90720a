// cmail/backends/imap_session.h: the imap::Session backed by the Store: what cmail-imapd runs.
//
// StoreImapSession serves one IMAP connection from the master database. Log-in checks the
// password with the Directory (argon2id; a legacy hash is upgraded after a good check;
// aliases resolve to their target, docs/compatibility.md#users-aliases, and the client is then
// that target) and requires an imapd row for the authorized user (schema version 13,
// docs/imapd.md#access), else the log-in is refused with [AUTHORIZATIONFAILED]; a log-in
// creates the special-use folders (Mailboxes::ensure_special_folders). LIST and LSUB show the
// user's folders and subscriptions, INBOX always; CREATE (with the parents the name implies,
// and a special use, RFC 6154 3),
// DELETE, RENAME, SUBSCRIBE and STATUS go to the Mailboxes of cmail/store/mailbox.h.
//
// The selected state: SELECT lists the folder; changes() reads what changed since a modseq
// (Mailboxes::changes_since, indexed); STORE, COPY, MOVE and EXPUNGE are one durable
// transaction each; FETCH reads the structure and the octets of the messages it needs
// (Mailboxes::read_structure, read_message) and sets \Seen in one write per batch; SEARCH
// evaluates the key over the listing, reading a message's text only when a text key reaches
// it. APPEND writes the message to a temporary file as it arrives (tmpfile(); never held
// whole) and stores it from there at append_end().
//
// Authentication abuse: with an AuthGuard (cmail/backends/auth_guard.h), as StorePop3Session:
// each log-in is admitted by the guard first (refused at once with [UNAVAILABLE] without a
// password check, or checked after the guard's wait) and its outcome counted; failures and
// refusals are logged at level 0 ("auth failed", "auth blocked", docs/logging.md), successes and
// "login denied" at level 1.
//
// Asynchrony, ownership and threads as for StorePop3Session (cmail/backends/pop3_session.h):
// every database read goes through Executor::run_blocking, the answer comes back through
// Executor::post and reaches the engine through set_completion(). A session destroyed while
// work is in flight drops that work's answer. REQUIRES: the Store outlives every function the
// session posted. Not thread-safe: one session per connection, used on its thread.
#pragma once

#include <cmail/backends/auth_guard.h>
#include <cmail/backends/session_limit.h>
#include <cmail/export.h>
#include <cmail/imap/server.h>
#include <cmail/log_sink.h>
#include <cmail/proto/transport.h>
#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/store.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::backends {

// LIST's view of a user's folders: every folder as the store names it, INBOX always (first,
// in upper case, whatever case the store has), with its subscription.
CMAIL_EXPORT std::vector<imap::MailboxInfo> imap_mailboxes(const std::vector<store::Folder>& folders);
// The store's mail_flags bits and space-separated keywords as IMAP flags, and back.
CMAIL_EXPORT imap::Flags imap_flags(std::uint32_t bits, std::string_view keywords);
CMAIL_EXPORT std::string store_keywords(const std::vector<std::string>& keywords);

// STATUS of a folder from its row and its messages (RFC 9051 6.3.11): MESSAGES, UNSEEN (no
// \Seen), DELETED (RFC 9051 7.3.1: \Deleted), SIZE (RFC 8438: the octets a client fetches, with
// CRLF line ends), UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ; RECENT is always 0 (RFC 9051 has no
// \Recent).
CMAIL_EXPORT imap::MailboxStatus imap_status(const store::Folder& folder,
                                             const std::vector<store::MessageInfo>& messages);

class CMAIL_EXPORT StoreImapSession final : public imap::Session {
 public:
  // `guard` null: no counting, delays or refusals.
  StoreImapSession(store::Store& store, proto::PeerInfo peer, proto::Executor executor,
                   std::shared_ptr<AuthGuard> guard = nullptr);
  ~StoreImapSession() override;

  // How a pending verdict is delivered; called on the connection's thread.
  void set_completion(std::function<void(imap::Verdict)> complete) { complete_ = std::move(complete); }
  // Where log lines go, with their level (0 errors and warnings, 1 info); called on the
  // connection's thread.
  void set_logger(LogSink logger) { logger_ = std::move(logger); }
  // Sessions per user (null: no limit): a log-in of a user who has the limit's maximum already
  // is refused with NO [LIMIT]; a successful one holds a place until the session ends.
  void set_session_limit(std::shared_ptr<SessionLimit> limit) { limit_ = std::move(limit); }

  imap::Verdict login(const sasl::Credentials& credentials) override;
  // SCRAM (docs/scram.md): the stored (or made-up) credentials off the loop, after the guard's
  // wait; then who logs in, as login() decides it.
  imap::Verdict scram_credentials(const std::string& authcid) override;
  imap::Verdict scram_login(const sasl::ScramResult& result) override;
  imap::Verdict list_mailboxes() override;
  imap::Verdict status(const std::string& mailbox) override;
  imap::Verdict create(const std::string& mailbox, const std::string& special_use) override;
  imap::Verdict remove(const std::string& mailbox) override;
  imap::Verdict rename(const std::string& from, const std::string& to) override;
  imap::Verdict subscribe(const std::string& mailbox, bool subscribed) override;
  imap::Verdict select(const std::string& mailbox, bool read_only) override;
  void unselect() override;
  imap::Verdict changes(std::uint64_t since, std::uint32_t uidnext) override;
  imap::Verdict expunge(const std::vector<std::uint32_t>& uids) override;
  imap::Verdict store(const std::vector<std::uint32_t>& uids, imap::StoreOp op, const imap::Flags& flags,
                      std::optional<std::uint64_t> unchanged_since) override;
  imap::Verdict copy(const std::vector<std::uint32_t>& uids, const std::string& target, bool move) override;
  imap::Verdict append_begin(const std::string& mailbox, const imap::Flags& flags,
                             std::optional<std::int64_t> internal_date, std::uint64_t size) override;
  void append_chunk(std::string_view bytes) override;
  imap::Verdict append_end() override;
  void append_abort() override;
  imap::Verdict fetch(const std::vector<std::uint32_t>& uids, const imap::FetchNeeds& needs) override;
  imap::Verdict search(const imap::SearchKey& key, const std::vector<std::uint32_t>& view,
                       const std::vector<std::uint32_t>& saved) override;
  void log(std::string_view line) override;

  // The authorized user, empty before log-in.
  const std::string& user() const { return user_; }

 private:
  // login()'s common part: the guard (unless `admitted`: SCRAM asked it at the lookup), `check`
  // and the imapd row on a worker, the verdict, log lines and the guard's count on the loop.
  imap::Verdict check_login(const sasl::Credentials& creds, bool admitted,
                            std::function<Result<store::Identity>(store::Store&)> check);
  // Runs `work` on a worker thread and completes the engine with its verdict on the
  // connection's thread; `what` names the work in the log when it fails.
  imap::Verdict off_loop(std::string what, std::function<imap::Verdict()> work);

  store::Store& store_;
  proto::PeerInfo peer_;
  proto::Executor executor_;
  std::function<void(imap::Verdict)> complete_;
  LogSink logger_;
  std::shared_ptr<AuthGuard> guard_;
  std::shared_ptr<SessionLimit> limit_;
  std::unique_ptr<SessionLimit::Ticket> ticket_;  // after a log-in, with limit_
  std::shared_ptr<StoreImapSession*> alive_;  // guards posted work against a session that is gone
  std::string user_;
  std::string selected_;  // the selected mailbox, as the store names it
  // APPEND in progress: its message in a temporary file.
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, FileCloser> append_;
  bool append_ok_ = true;
  std::string append_mailbox_;
  imap::Flags append_flags_;
  std::int64_t append_date_ = 0;
};

}  // namespace cmail::backends
