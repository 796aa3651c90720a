// cmail/net/serve.h: serve an engine with your own Session on a Runtime, in one call.
//
// serve_smtp(), serve_pop3() and serve_imap() listen (Runtime::listen) and give every accepted
// connection an engine (smtp::Server, pop3::Server, imap::Server) and the Session your factory makes for it. The factory
// also gets that connection's Completion: the way to answer a verdict the Session returned as
// pending, later, from any thread. A Completion posts the verdict to the loop thread (or
// applies it at once when called there outside the engine's own calls), completes the engine
// with it and flushes the connection (post, complete, kick), so a Session can hand slow work
// (a database, a password check, a spam scanner) to a thread pool and answer from there.
//
//   net::serve_smtp(runtime, listener, options,
//       [](const proto::PeerInfo& peer, net::Completion<smtp::Verdict> done) {
//         return std::make_shared<MySession>(peer, std::move(done));
//       });
//
// Thread-safety: call serve_*() on the loop thread (before or during Runtime::run()); the
// factory runs on the loop thread. A Completion may be copied and called from any thread; a
// call after its connection closed does nothing. Each connection has at most one pending
// verdict (the engines' rule): answer each pending verdict once.
// Ownership: the connection owns its engine and keeps the Session alive (the engine is
// destroyed first); a Completion holds neither.
#pragma once

#include <cmail/export.h>
#include <cmail/imap/server.h>
#include <cmail/net/runtime.h>
#include <cmail/pop3/server.h>
#include <cmail/proto/transport.h>
#include <cmail/smtp/server.h>
#include <cmail/status.h>

#include <chrono>
#include <functional>
#include <memory>

namespace cmail::net {

// Answers the pending verdict of one connection. Copyable; callable from any thread.
template <typename Verdict>
class Completion {
 public:
  Completion() = default;
  explicit Completion(std::function<void(Verdict)> fn) : fn_(std::move(fn)) {}
  void operator()(Verdict v) const {
    if (fn_) fn_(std::move(v));
  }
  explicit operator bool() const { return static_cast<bool>(fn_); }

 private:
  std::function<void(Verdict)> fn_;
};

using SmtpSessionFactory =
    std::function<std::shared_ptr<smtp::Session>(const proto::PeerInfo&, Completion<smtp::Verdict>)>;
using Pop3SessionFactory =
    std::function<std::shared_ptr<pop3::Session>(const proto::PeerInfo&, Completion<pop3::Verdict>)>;
using ImapSessionFactory =
    std::function<std::shared_ptr<imap::Session>(const proto::PeerInfo&, Completion<imap::Verdict>)>;

// Listens and serves SMTP; returns the listener's index (Runtime::port() tells its port). A
// factory that returns null refuses the connection (it is closed at once).
CMAIL_EXPORT Result<int> serve_smtp(Runtime& runtime, const ListenerOptions& listener,
                                    const smtp::ServerOptions& options, SmtpSessionFactory factory);
// The same for POP3.
CMAIL_EXPORT Result<int> serve_pop3(Runtime& runtime, const ListenerOptions& listener,
                                    const pop3::ServerOptions& options, Pop3SessionFactory factory);
// The same for IMAP (the engine's idle timeout and per-command deadline() apply). With a
// `notify_path` (store::notify_path of the database, cmail/store/mailbox.h), every connection
// of the listener is told when mail may have changed (imap::Server::mailbox_changed()): the
// file is watched with inotify, so a commit in any process reaches an IDLE session at once;
// when it cannot be watched, every `poll_every` instead.
CMAIL_EXPORT Result<int> serve_imap(Runtime& runtime, const ListenerOptions& listener,
                                    const imap::ServerOptions& options, ImapSessionFactory factory,
                                    std::string notify_path = {},
                                    std::chrono::milliseconds poll_every = std::chrono::seconds(5));

}  // namespace cmail::net
