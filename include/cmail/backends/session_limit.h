// cmail/backends/session_limit.h: how many sessions each user has at once, with a limit.
//
// One SessionLimit serves every IMAP listener of a process (cmail-imapd, `cmail serve`): a
// session asks for a Ticket when its log-in succeeds and holds it until it ends; a user who
// already has `max` sessions gets none, and the log-in is refused (StoreImapSession answers
// NO [LIMIT], RFC 5530 3). It bounds what one account (a leaked password, a misconfigured
// client opening a connection per folder) can hold of the server, beside the per-address
// limit of the listeners (maxperip=). Counted per process: two cmail-imapd processes on one
// master database each allow `max`. User names are compared as the store resolved them
// (an alias counts as its target).
//
// Thread-safety: every member may be called from any thread (one mutex); a Ticket may be
// destroyed on any thread, and may outlive the SessionLimit's last other owner (it shares it).
#pragma once

#include <cmail/export.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace cmail::backends {

class CMAIL_EXPORT SessionLimit : public std::enable_shared_from_this<SessionLimit> {
 public:
  // One user's place; gives it back when destroyed.
  class Ticket {
   public:
    Ticket(std::shared_ptr<SessionLimit> owner, std::string user) : owner_(std::move(owner)), user_(std::move(user)) {}
    ~Ticket() { owner_->release(user_); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

   private:
    std::shared_ptr<SessionLimit> owner_;
    std::string user_;
  };

  // `max` sessions per user; 0: no limit (tickets are still counted).
  static std::shared_ptr<SessionLimit> create(std::uint32_t max) {
    return std::shared_ptr<SessionLimit>(new SessionLimit(max));
  }

  // A ticket for `user`, or null when the user has `max` sessions already.
  std::unique_ptr<Ticket> acquire(const std::string& user);
  // The sessions `user` holds now.
  std::uint32_t count(const std::string& user) const;
  std::uint32_t max() const { return max_; }

 private:
  explicit SessionLimit(std::uint32_t max) : max_(max) {}
  void release(const std::string& user);

  const std::uint32_t max_;
  mutable std::mutex mu_;
  std::map<std::string, std::uint32_t> counts_;  // only users with at least one session
};

}  // namespace cmail::backends
