// Serving an engine with an embedder's Session: see cmail/net/serve.h.
#include <cmail/net/serve.h>

#include <cmail/backends/log_line.h>

#include "loop.h"

#include <cstdio>

#include <chrono>
#include <optional>
#include <thread>

namespace cmail::net {

namespace {

// One connection: the Session, its engine, and what a Completion needs to reach them. Lives
// as long as its Handler (the runtime's connection); Completions hold it weakly.
template <typename E, typename S>
struct Served {
  std::shared_ptr<S> session;  // declared first: destroyed after the engine
  std::optional<E> engine;
  Kick kick;
  int depth = 0;  // calls into the engine in progress on the loop thread
  // The connection's log lines (docs/logging.md): its fields, and when it began.
  LogSink log;
  backends::LogLine fields{""};
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

// What the disconnect line tells of each engine's conversation.
void describe(backends::LogLine& l, const smtp::Server& e) {
  l.add("tls", e.info().tls ? "yes" : "no");
  if (e.info().user) l.add("user", *e.info().user);
  l.add("messages", e.messages());
}
void describe(backends::LogLine& l, const pop3::Server& e) {
  l.add("tls", e.tls() ? "yes" : "no");
  if (!e.user().empty()) l.add("user", e.user());
}
void describe(backends::LogLine& l, const imap::Server& e) {
  l.add("tls", e.tls() ? "yes" : "no");
  if (!e.user().empty()) l.add("user", e.user());
}

// Counts a call into the engine, so that a Completion called from inside it posts instead of
// re-entering the engine (a Session must never call its engine from its callbacks).
template <typename E, typename S>
struct InEngine {
  explicit InEngine(Served<E, S>& s) : served(s) { ++served.depth; }
  ~InEngine() { --served.depth; }
  InEngine(const InEngine&) = delete;
  InEngine& operator=(const InEngine&) = delete;
  Served<E, S>& served;
};

template <typename E, typename S>
class ServedHandler final : public Handler {
 public:
  explicit ServedHandler(std::shared_ptr<Served<E, S>> s) : s_(std::move(s)) {}
  ~ServedHandler() override {
    if (!s_->log.shows(1) || !s_->engine) return;
    backends::LogLine l("disconnect" + s_->fields.str());
    describe(l, *s_->engine);
    l.add("duration", std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - s_->start));
    s_->log(1, l.str());
  }
  ServedHandler(const ServedHandler&) = delete;
  ServedHandler& operator=(const ServedHandler&) = delete;
  void receive(std::string_view b) override {
    InEngine<E, S> in(*s_);
    s_->engine->receive(b);
  }
  void receive_eof() override {
    InEngine<E, S> in(*s_);
    s_->engine->receive_eof();
  }
  std::string_view pending_output() const override { return s_->engine->pending_output(); }
  void consume_output(std::size_t n) override {
    InEngine<E, S> in(*s_);
    s_->engine->consume_output(n);  // POP3 encodes more, and may then parse waiting commands
  }
  std::optional<proto::Event> next_event() override { return s_->engine->next_event(); }
  void tls_established(const proto::TlsInfo& info) override {
    InEngine<E, S> in(*s_);
    s_->engine->tls_established(info);
  }
  void timed_out() override {
    InEngine<E, S> in(*s_);
    s_->engine->timed_out();
  }
  bool wants_read() const override { return s_->engine->wants_read(); }
  std::chrono::milliseconds timeout() const override { return s_->engine->timeout(); }
  proto::Deadline deadline() const override { return s_->engine->deadline(); }

 private:
  std::shared_ptr<Served<E, S>> s_;
};

// Post, complete, kick: the verdict reaches the engine on the loop thread, then the
// connection's output is flushed and reading re-evaluated.
template <typename E, typename S, typename V>
Completion<V> completion_for(std::weak_ptr<Served<E, S>> weak, std::function<void(std::function<void()>)> post) {
  const std::thread::id loop = std::this_thread::get_id();  // factories run on the loop thread
  auto apply = [weak](V verdict) {
    auto s = weak.lock();
    if (!s || !s->engine) return;  // the connection is gone
    {
      InEngine<E, S> in(*s);
      (void)s->engine->complete(std::move(verdict));  // InvalidArgument: nothing was pending
    }
    if (s->kick) s->kick();
  };
  return Completion<V>([apply, post, weak, loop](V v) {
    if (std::this_thread::get_id() == loop) {
      auto s = weak.lock();
      if (!s) return;
      if (s->depth == 0) return apply(std::move(v));
    }
    post([apply, v = std::move(v)]() mutable { apply(std::move(v)); });
  });
}

// The connections of one listener, for a signal to all of them (Registry::each).
template <typename E, typename S>
struct Registry {
  std::vector<std::weak_ptr<Served<E, S>>> served;
  void add(const std::shared_ptr<Served<E, S>>& s) {
    std::erase_if(served, [](const auto& w) { return w.expired(); });
    served.push_back(s);
  }
  template <typename F>
  void each(F f) {
    std::erase_if(served, [](const auto& w) { return w.expired(); });
    for (const auto& w : std::vector<std::weak_ptr<Served<E, S>>>(served))
      if (auto s = w.lock(); s && s->engine) f(*s);
  }
};

template <typename E, typename S, typename V, typename Options, typename SessionFactory>
Result<int> serve(Runtime& runtime, const ListenerOptions& listener, const Options& options,
                  SessionFactory factory, std::string_view protocol,
                  std::shared_ptr<Registry<E, S>> registry = nullptr) {
  auto post = runtime.executor().post;
  return runtime.listen(listener, [options, factory, post, log = listener.log, name = listener.name,
                                   kind = std::string(protocol), registry](const proto::PeerInfo& peer, Kick kick)
                                      -> std::unique_ptr<Handler> {
    auto served = std::make_shared<Served<E, S>>();
    served->kick = std::move(kick);
    served->session = factory(peer, completion_for<E, S, V>(served, post));
    if (!served->session) return nullptr;
    if (log.shows(1)) {
      served->log = log;
      served->fields.add("proto", kind).add("listener", name.empty() ? kind : name);
      served->fields.add("addr", peer.address).add("port", std::uint64_t{peer.port});
      log(1, "connect" + served->fields.str());
    }
    served->engine.emplace(options, *served->session);
    if (registry) registry->add(served);
    return std::make_unique<ServedHandler<E, S>>(std::move(served));
  });
}

}  // namespace

Result<int> serve_smtp(Runtime& runtime, const ListenerOptions& listener, const smtp::ServerOptions& options,
                       SmtpSessionFactory factory) {
  return serve<smtp::Server, smtp::Session, smtp::Verdict>(runtime, listener, options, std::move(factory), "smtp");
}

Result<int> serve_pop3(Runtime& runtime, const ListenerOptions& listener, const pop3::ServerOptions& options,
                       Pop3SessionFactory factory) {
  return serve<pop3::Server, pop3::Session, pop3::Verdict>(runtime, listener, options, std::move(factory), "pop3");
}

namespace {

using ImapRegistry = Registry<imap::Server, imap::Session>;

// Tells every IMAP connection of a listener that mail may have changed: an inotify watch of
// the notify file (libuv's fs_event), re-armed when the file is replaced, or a timer.
struct MailWatch {
  std::shared_ptr<ImapRegistry> registry;
  std::string path;
  uv_fs_event_t* event = nullptr;
  uv_timer_t* timer = nullptr;

  void fire() {
    registry->each([](Served<imap::Server, imap::Session>& s) {
      {
        InEngine<imap::Server, imap::Session> in(s);
        s.engine->mailbox_changed();
      }
      if (s.kick) s.kick();
    });
  }
  bool watch() {
    if (std::FILE* f = std::fopen(path.c_str(), "a")) std::fclose(f);  // inotify needs the file
    return uv_fs_event_start(event, [](uv_fs_event_t* h, const char*, int events, int) {
             auto* w = static_cast<MailWatch*>(h->data);
             if (events & UV_RENAME) {  // replaced: watch the new file
               uv_fs_event_stop(h);
               w->watch();
             }
             w->fire();
           }, path.c_str(), 0) == 0;
  }
  void stop() {
    if (event) {
      uv_fs_event_stop(event);
      uv_close(reinterpret_cast<uv_handle_t*>(event), [](uv_handle_t* h) { delete reinterpret_cast<uv_fs_event_t*>(h); });
      event = nullptr;
    }
    if (timer) {
      uv_timer_stop(timer);
      uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      timer = nullptr;
    }
  }
};

}  // namespace

Result<int> serve_imap(Runtime& runtime, const ListenerOptions& listener, const imap::ServerOptions& options,
                       ImapSessionFactory factory, std::string notify_path, std::chrono::milliseconds poll_every) {
  auto registry = std::make_shared<ImapRegistry>();
  auto id = serve<imap::Server, imap::Session, imap::Verdict>(runtime, listener, options, std::move(factory), "imap",
                                                               registry);
  if (!id || notify_path.empty()) return id;
  auto w = std::make_shared<MailWatch>();
  w->registry = registry;
  w->path = std::move(notify_path);
  uv_loop_t* loop = loop_of(runtime);
  w->event = new uv_fs_event_t;
  uv_fs_event_init(loop, w->event);
  w->event->data = w.get();
  if (!w->watch()) {
    uv_close(reinterpret_cast<uv_handle_t*>(w->event), [](uv_handle_t* h) { delete reinterpret_cast<uv_fs_event_t*>(h); });
    w->event = nullptr;
    w->timer = new uv_timer_t;
    uv_timer_init(loop, w->timer);
    w->timer->data = w.get();
    const auto every = static_cast<std::uint64_t>(poll_every.count());
    uv_timer_start(w->timer, [](uv_timer_t* t) { static_cast<MailWatch*>(t->data)->fire(); }, every, every);
  }
  runtime.at_shutdown([w] { w->stop(); });
  return id;
}

}  // namespace cmail::net
