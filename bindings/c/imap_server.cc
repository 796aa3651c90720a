// The C ABI's IMAP server engine: imap::Server with a Session that turns every decision into an
// event and waits for the caller's verdict call. FETCH and SEARCH are message requests: the
// caller gives the messages of the UIDs asked for (flags, date, modseq, raw octets) and this
// file computes the answer with the library: the part tree (mail::parse_structure), the
// octets the FETCH items read (imap::content_ranges), the SEARCH keys (imap::matches over
// imap::StoredMessageText). See the IMAP section of include/cmail/cmail.h.
//
// Ownership: the handle owns the engine, its Session and the events' data (the current event's
// strings and arrays live until the next call). Thread-safety: none; one thread at a time per
// handle, as for the other engines.
#include "common.h"

#include <cmail/imap/server.h>

#include <algorithm>
#include <deque>
#include <initializer_list>
#include <unordered_map>
#include <vector>

using namespace cmail;

namespace {

struct Record {
  int type = CMAIL_EVENT_NONE;
  std::string data, authzid, authcid, password, mailbox, target, special_use, keywords;
  int subscribe = 0, read_only = 0, move = 0;
  std::vector<std::uint32_t> uids;
  int op = 0;
  std::uint32_t flags = 0;
  int has_modseq = 0;
  std::uint64_t modseq = 0;
  std::uint32_t uidnext = 0;
  int has_date = 0;
  std::int64_t internal_date = 0;
  std::uint64_t size = 0;
  int need_octets = 0, set_seen = 0;
};

constexpr std::uint32_t kAllFlags = CMAIL_IMAP_SEEN | CMAIL_IMAP_ANSWERED | CMAIL_IMAP_FLAGGED | CMAIL_IMAP_DELETED |
                                    CMAIL_IMAP_DRAFT;
static_assert(CMAIL_IMAP_SEEN == imap::kSeen && CMAIL_IMAP_ANSWERED == imap::kAnswered &&
              CMAIL_IMAP_FLAGGED == imap::kFlagged && CMAIL_IMAP_DELETED == imap::kDeleted &&
              CMAIL_IMAP_DRAFT == imap::kDraft);
static_assert(CMAIL_IMAP_RESP_USEATTR == static_cast<int>(imap::RespCode::UseAttr));

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

// Keywords as one string, atoms separated by spaces (RFC 9051 9: flag-keyword = atom; a
// "\\" flag is a system flag, given as a bit). nullopt for anything else.
std::optional<std::vector<std::string>> keywords(const char* s) {
  std::vector<std::string> out;
  if (!s) return out;
  std::string_view v(s);
  std::size_t i = 0;
  while (i < v.size()) {
    if (v[i] == ' ') {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < v.size() && v[j] != ' ') {
      if (!imap::is_atom_char(v[j])) return std::nullopt;
      ++j;
    }
    out.emplace_back(v.substr(i, j - i));
    i = j;
  }
  return out;
}

// Whether evaluating the key reads the message's text (header, body, Date: field).
bool reads_text(const imap::SearchKey& k) {
  using K = imap::SearchKey::Kind;
  switch (k.kind) {
    case K::Header: case K::Body: case K::Text: case K::SentBefore: case K::SentOn: case K::SentSince:
      return true;
    default:
      return std::any_of(k.children.begin(), k.children.end(), reads_text);
  }
}

const char* event_name(int type) {
  switch (type) {
    case CMAIL_IMAP_EVENT_LOGIN: return "LOGIN";
    case CMAIL_IMAP_EVENT_LIST: return "LIST";
    case CMAIL_IMAP_EVENT_STATUS: return "STATUS";
    case CMAIL_IMAP_EVENT_CREATE: return "CREATE";
    case CMAIL_IMAP_EVENT_DELETE: return "DELETE";
    case CMAIL_IMAP_EVENT_RENAME: return "RENAME";
    case CMAIL_IMAP_EVENT_SUBSCRIBE: return "SUBSCRIBE";
    case CMAIL_IMAP_EVENT_SELECT: return "SELECT";
    case CMAIL_IMAP_EVENT_CHANGES: return "CHANGES";
    case CMAIL_IMAP_EVENT_EXPUNGE: return "EXPUNGE";
    case CMAIL_IMAP_EVENT_STORE: return "STORE";
    case CMAIL_IMAP_EVENT_COPY: return "COPY";
    case CMAIL_IMAP_EVENT_APPEND: return "APPEND";
    case CMAIL_IMAP_EVENT_APPEND_END: return "APPEND_END";
    case CMAIL_IMAP_EVENT_FETCH: return "FETCH";
    case CMAIL_IMAP_EVENT_SEARCH: return "SEARCH";
    default: return "none";
  }
}

}  // namespace

struct cmail_imap_server {
  class Session final : public imap::Session {
   public:
    explicit Session(cmail_imap_server& h) : h_(h) {}
    imap::Verdict login(const sasl::Credentials& c) override {
      Record& r = decide(CMAIL_IMAP_EVENT_LOGIN);
      r.authzid = c.authzid;
      r.authcid = c.authcid;
      r.password = c.password;
      return imap::Verdict::pending();
    }
    imap::Verdict list_mailboxes() override {
      decide(CMAIL_IMAP_EVENT_LIST);
      return imap::Verdict::pending();
    }
    imap::Verdict status(const std::string& mailbox) override {
      decide(CMAIL_IMAP_EVENT_STATUS).mailbox = mailbox;
      return imap::Verdict::pending();
    }
    imap::Verdict create(const std::string& mailbox, const std::string& special_use) override {
      Record& r = decide(CMAIL_IMAP_EVENT_CREATE);
      r.mailbox = mailbox;
      r.special_use = special_use;
      return imap::Verdict::pending();
    }
    imap::Verdict remove(const std::string& mailbox) override {
      decide(CMAIL_IMAP_EVENT_DELETE).mailbox = mailbox;
      return imap::Verdict::pending();
    }
    imap::Verdict rename(const std::string& from, const std::string& to) override {
      Record& r = decide(CMAIL_IMAP_EVENT_RENAME);
      r.mailbox = from;
      r.target = to;
      return imap::Verdict::pending();
    }
    imap::Verdict subscribe(const std::string& mailbox, bool on) override {
      Record& r = decide(CMAIL_IMAP_EVENT_SUBSCRIBE);
      r.mailbox = mailbox;
      r.subscribe = on;
      return imap::Verdict::pending();
    }
    imap::Verdict select(const std::string& mailbox, bool read_only) override {
      Record& r = decide(CMAIL_IMAP_EVENT_SELECT);
      r.mailbox = mailbox;
      r.read_only = read_only;
      return imap::Verdict::pending();
    }
    void unselect() override { h_.queue.emplace_back().type = CMAIL_IMAP_EVENT_UNSELECT; }
    imap::Verdict changes(std::uint64_t since, std::uint32_t uidnext) override {
      Record& r = decide(CMAIL_IMAP_EVENT_CHANGES);
      r.has_modseq = 1;
      r.modseq = since;
      r.uidnext = uidnext;
      return imap::Verdict::pending();
    }
    imap::Verdict expunge(const std::vector<std::uint32_t>& uids) override {
      decide(CMAIL_IMAP_EVENT_EXPUNGE).uids = uids;
      return imap::Verdict::pending();
    }
    imap::Verdict store(const std::vector<std::uint32_t>& uids, imap::StoreOp op, const imap::Flags& flags,
                        std::optional<std::uint64_t> unchanged_since) override {
      Record& r = decide(CMAIL_IMAP_EVENT_STORE);
      r.uids = uids;
      r.op = op == imap::StoreOp::Add ? CMAIL_IMAP_STORE_ADD
             : op == imap::StoreOp::Remove ? CMAIL_IMAP_STORE_REMOVE
                                           : CMAIL_IMAP_STORE_REPLACE;
      r.flags = flags.system;
      r.keywords = join(flags.keywords);
      r.has_modseq = unchanged_since.has_value();
      r.modseq = unchanged_since.value_or(0);
      return imap::Verdict::pending();
    }
    imap::Verdict copy(const std::vector<std::uint32_t>& uids, const std::string& target, bool move) override {
      Record& r = decide(CMAIL_IMAP_EVENT_COPY);
      r.uids = uids;
      r.target = target;
      r.move = move;
      return imap::Verdict::pending();
    }
    imap::Verdict append_begin(const std::string& mailbox, const imap::Flags& flags,
                               std::optional<std::int64_t> internal_date, std::uint64_t size) override {
      Record& r = decide(CMAIL_IMAP_EVENT_APPEND);
      r.mailbox = mailbox;
      r.flags = flags.system;
      r.keywords = join(flags.keywords);
      r.has_date = internal_date.has_value();
      r.internal_date = internal_date.value_or(0);
      r.size = size;
      return imap::Verdict::pending();
    }
    void append_chunk(std::string_view bytes) override {
      // Consecutive chunks not taken yet are one event: fewer events when input comes in
      // small pieces.
      if (h_.queue.empty() || h_.queue.back().type != CMAIL_IMAP_EVENT_APPEND_DATA)
        h_.queue.emplace_back().type = CMAIL_IMAP_EVENT_APPEND_DATA;
      h_.queue.back().data.append(bytes);
    }
    imap::Verdict append_end() override {
      decide(CMAIL_IMAP_EVENT_APPEND_END);
      return imap::Verdict::pending();
    }
    void append_abort() override { h_.queue.emplace_back().type = CMAIL_IMAP_EVENT_APPEND_ABORT; }
    imap::Verdict fetch(const std::vector<std::uint32_t>& uids, const imap::FetchNeeds& needs) override {
      Record& r = decide(CMAIL_IMAP_EVENT_FETCH);
      r.uids = uids;
      r.need_octets = needs.structure || needs.content;
      r.set_seen = needs.set_seen;
      r.has_modseq = needs.changed_since.has_value();
      r.modseq = needs.changed_since.value_or(0);
      h_.start_request(uids, r.need_octets);
      h_.needs = needs;
      return imap::Verdict::pending();
    }
    imap::Verdict search(const imap::SearchKey& key, const std::vector<std::uint32_t>& view,
                         const std::vector<std::uint32_t>& saved) override {
      Record& r = decide(CMAIL_IMAP_EVENT_SEARCH);
      r.uids = view;
      r.need_octets = reads_text(key);
      h_.start_request(view, r.need_octets);
      h_.key = key;
      h_.saved = saved;
      h_.context = imap::SearchContext::of(h_.view, h_.saved);
      return imap::Verdict::pending();
    }

   private:
    Record& decide(int type) {
      h_.awaiting = type;
      Record& r = h_.queue.emplace_back();
      r.type = type;
      return r;
    }
    cmail_imap_server& h_;
  };

  cmail_imap_server(const imap::ServerOptions& o, std::uint64_t max) : max_message(max), session(*this), server(o, session) {}

  // A FETCH or SEARCH request: its UIDs (FETCH ascending; SEARCH the view in sequence order,
  // whose positions are the sequence numbers) and which of them were given.
  void start_request(const std::vector<std::uint32_t>& uids, bool octets) {
    view = uids;
    position.clear();
    for (std::size_t i = 0; i < view.size(); ++i) position.emplace(view[i], static_cast<std::uint32_t>(i));
    given.assign(view.size(), false);
    need_octets = octets;
    fetched.clear();
    found.clear();
  }

  std::deque<Record> queue;
  Record current;
  int awaiting = CMAIL_EVENT_NONE;  // the decision waiting for a verdict (an event type)
  const std::uint64_t max_message;
  // The message request in progress.
  std::vector<std::uint32_t> view;
  std::unordered_map<std::uint32_t, std::uint32_t> position;  // UID -> index in view
  std::vector<bool> given;
  bool need_octets = false;
  imap::FetchNeeds needs;
  std::vector<imap::FetchedMessage> fetched;
  imap::SearchKey key;
  std::vector<std::uint32_t> saved;
  imap::SearchContext context;
  std::vector<imap::SearchMatch> found;

  Session session;
  imap::Server server;  // after the Session it calls
};

namespace {

// CMAIL_OK when the waiting decision is one of `types`; else the error.
int expect(const cmail_imap_server* s, std::initializer_list<int> types, const char* answer, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  if (s->awaiting == CMAIL_EVENT_NONE) return c::fail(errmsg, CMAIL_WRONG_STATE, "no decision awaits a verdict");
  if (std::find(types.begin(), types.end(), s->awaiting) == types.end())
    return c::fail(errmsg, CMAIL_WRONG_STATE,
                   std::string("the decision waiting is ") + event_name(s->awaiting) + ", which " + answer +
                       " does not answer");
  return CMAIL_OK;
}

int complete(cmail_imap_server* s, imap::Verdict v, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  if (s->awaiting == CMAIL_EVENT_NONE) return c::fail(errmsg, CMAIL_WRONG_STATE, "no decision awaits a verdict");
  return c::guard(errmsg, [&] {
    const int was = s->awaiting;
    s->awaiting = CMAIL_EVENT_NONE;  // the engine may ask the next decision from complete()
    Status st = s->server.complete(std::move(v));
    if (!st.ok()) {
      s->awaiting = was;
      return c::fail(errmsg, CMAIL_WRONG_STATE, st.message());
    }
    return c::ok(errmsg);
  });
}

// Message states from the caller's parallel arrays; an error text, or empty.
std::string states(std::size_t count, const std::uint32_t* uids, const std::uint32_t* flags,
                   const char* const* kws, const std::uint64_t* modseqs, std::vector<imap::MessageState>& out) {
  if (count && !uids) return "uids is NULL";
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    imap::MessageState m;
    m.uid = uids[i];
    if (m.uid == 0) return "uid " + std::to_string(i) + " is 0";
    // RFC 9051 2.3.1.1: UIDs ascend in the mailbox.
    if (i > 0 && m.uid <= uids[i - 1]) return "uids are not ascending at " + std::to_string(i);
    m.flags.system = flags ? flags[i] : 0;
    if (m.flags.system & ~kAllFlags) return "flags " + std::to_string(i) + " has bits that are not CMAIL_IMAP_*";
    auto k = keywords(kws ? kws[i] : nullptr);
    if (!k) return "keywords " + std::to_string(i) + " are not atoms separated by spaces";
    m.flags.keywords = std::move(*k);
    m.modseq = modseqs ? modseqs[i] : 0;
    out.push_back(std::move(m));
  }
  return {};
}

std::string uid_list(const std::uint32_t* uids, std::size_t count, std::vector<std::uint32_t>& out) {
  if (count && !uids) return "uids is NULL";
  out.assign(uids ? uids : nullptr, uids ? uids + count : nullptr);
  if (std::find(out.begin(), out.end(), 0u) != out.end()) return "a uid is 0";
  return {};
}

}  // namespace

extern "C" {

void cmail_imap_server_options_init(cmail_imap_server_options* o) {
  if (!o) return;
  const imap::ServerOptions d;
  *o = cmail_imap_server_options{};
  o->hostname = "localhost";
  o->starttls_available = d.starttls_available;
  o->tls_active = d.tls_active;
  o->tls_required = d.tls_required;
  o->max_errors = d.max_errors;
  o->max_login_failures = d.max_login_failures;
  o->idle_timeout_ms = d.idle_timeout.count();
  o->max_command_line = d.max_command_line;
  o->max_append = d.max_append;
  o->max_message = 64ull << 20;
}

int cmail_imap_server_new(const cmail_imap_server_options* options, cmail_imap_server** out, char** errmsg) {
  if (!out) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "out is NULL");
  *out = nullptr;
  return c::guard(errmsg, [&] {
    cmail_imap_server_options o;
    cmail_imap_server_options_init(&o);
    if (options) o = *options;
    if (o.max_errors <= 0 || o.max_login_failures <= 0)
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "max_errors and max_login_failures must be positive");
    // RFC 7162 4: a server accepts command lines of at least 8192 octets.
    if (o.max_command_line < 8192) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "max_command_line is below 8192");
    if (o.max_message == 0) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "max_message is 0");
    imap::ServerOptions io;
    io.hostname = c::str(o.hostname, "localhost");
    io.starttls_available = o.starttls_available;
    io.tls_active = o.tls_active;
    io.tls_required = o.tls_required;
    io.max_errors = o.max_errors;
    io.max_login_failures = o.max_login_failures;
    io.idle_timeout = c::ms(o.idle_timeout_ms);
    io.max_command_line = o.max_command_line;
    io.max_append = o.max_append;
    *out = c::adopt(new cmail_imap_server(io, o.max_message));
    return c::ok(errmsg);
  });
}

void cmail_imap_server_free(cmail_imap_server* s) {
  if (c::release(s)) delete s;
}

int cmail_imap_server_receive(cmail_imap_server* s, const char* data, size_t len, char** errmsg) {
  return c::receive(s, &cmail_imap_server::server, data, len, errmsg);
}

int cmail_imap_server_receive_eof(cmail_imap_server* s, char** errmsg) {
  return c::receive_eof(s, &cmail_imap_server::server, errmsg);
}

int cmail_imap_server_pending_output(const cmail_imap_server* s, const char** data, size_t* len, char** errmsg) {
  return c::pending_output(s, &cmail_imap_server::server, data, len, errmsg);
}

int cmail_imap_server_consume_output(cmail_imap_server* s, size_t n, char** errmsg) {
  return c::consume_output(s, &cmail_imap_server::server, n, errmsg);
}

int cmail_imap_server_next_event(cmail_imap_server* s, cmail_imap_event* event, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  if (!event) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "event is NULL");
  return c::guard(errmsg, [&] {
    s->current = c::next_record(s->queue, s->server);
    const Record& r = s->current;
    *event = cmail_imap_event{};
    event->type = r.type;
    if (r.type == CMAIL_EVENT_NONE) return c::ok(errmsg);
    event->data = r.data.data();
    event->data_len = r.data.size();
    if (r.type == CMAIL_IMAP_EVENT_LOGIN) {
      event->authzid = r.authzid.c_str();
      event->authcid = r.authcid.c_str();
      event->password = r.password.c_str();
    }
    if (!r.mailbox.empty()) event->mailbox = r.mailbox.c_str();
    if (!r.target.empty()) event->target = r.target.c_str();
    if (r.type == CMAIL_IMAP_EVENT_CREATE) event->special_use = r.special_use.c_str();
    if (r.type == CMAIL_IMAP_EVENT_STORE || r.type == CMAIL_IMAP_EVENT_APPEND) event->keywords = r.keywords.c_str();
    event->subscribe = r.subscribe;
    event->read_only = r.read_only;
    event->move = r.move;
    event->uids = r.uids.data();
    event->uid_count = r.uids.size();
    event->op = r.op;
    event->flags = r.flags;
    event->has_modseq = r.has_modseq;
    event->modseq = r.modseq;
    event->uidnext = r.uidnext;
    event->has_date = r.has_date;
    event->internal_date = r.internal_date;
    event->size = r.size;
    event->need_octets = r.need_octets;
    event->set_seen = r.set_seen;
    return c::ok(errmsg);
  });
}

int cmail_imap_server_tls_established(cmail_imap_server* s, const char* version, const char* cipher, int bits,
                                      char** errmsg) {
  return c::tls_established(s, &cmail_imap_server::server, version, cipher, bits, errmsg);
}

int cmail_imap_server_on_timeout(cmail_imap_server* s, char** errmsg) {
  return c::on_timeout(s, &cmail_imap_server::server, errmsg);
}

int cmail_imap_server_wants_read(const cmail_imap_server* s) { return c::live(s) && s->server.wants_read(); }
int cmail_imap_server_is_closed(const cmail_imap_server* s) { return !c::live(s) || s->server.closed(); }
int64_t cmail_imap_server_timeout_ms(const cmail_imap_server* s) { return c::live(s) ? s->server.timeout().count() : -1; }

int cmail_imap_server_deadline(const cmail_imap_server* s, uint64_t* phase, int64_t* budget_ms, char** errmsg) {
  return c::deadline(s, &cmail_imap_server::server, phase, budget_ms, errmsg);
}

int cmail_imap_server_state(const cmail_imap_server* s) { return c::live(s) ? static_cast<int>(s->server.state()) : -1; }
int cmail_imap_server_idling(const cmail_imap_server* s) { return c::live(s) && s->server.idling(); }

int cmail_imap_server_mailbox_changed(cmail_imap_server* s, char** errmsg) {
  if (!c::live(s)) return c::bad_handle(errmsg);
  return c::guard(errmsg, [&] {
    s->server.mailbox_changed();
    return c::ok(errmsg);
  });
}

int cmail_imap_server_user(cmail_imap_server* s, const char* identity, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_LOGIN}, "_user()", errmsg)) return rc;
  if (!identity || !*identity) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "identity is empty");
  return c::guard(errmsg, [&] { return complete(s, imap::Verdict::user(identity), errmsg); });
}

int cmail_imap_server_accept(cmail_imap_server* s, char** errmsg) {
  if (int rc = expect(s,
                      {CMAIL_IMAP_EVENT_CREATE, CMAIL_IMAP_EVENT_DELETE, CMAIL_IMAP_EVENT_RENAME,
                       CMAIL_IMAP_EVENT_SUBSCRIBE, CMAIL_IMAP_EVENT_APPEND},
                      "_accept()", errmsg))
    return rc;
  return complete(s, imap::Verdict::accept(), errmsg);
}

int cmail_imap_server_mailboxes(cmail_imap_server* s, const char* const* names, const char* const* special_use,
                                const unsigned* attributes, size_t count, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_LIST}, "_mailboxes()", errmsg)) return rc;
  if (count && !names) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "names is NULL");
  return c::guard(errmsg, [&] {
    std::vector<imap::MailboxInfo> list;
    list.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      if (!names[i] || !*names[i]) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "name " + std::to_string(i) + " is empty");
      imap::MailboxInfo m;
      m.name = names[i];
      m.special_use = c::str(special_use ? special_use[i] : nullptr);
      // RFC 6154 2: a special use is one "\\" flag.
      if (!m.special_use.empty() && (m.special_use[0] != '\\' || !keywords(m.special_use.c_str() + 1) ||
                                     m.special_use.find(' ') != std::string::npos))
        return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "special_use " + std::to_string(i) + " is not a \\ flag");
      const unsigned a = attributes ? attributes[i] : 0;
      if (a & ~unsigned{CMAIL_IMAP_MAILBOX_SUBSCRIBED | CMAIL_IMAP_MAILBOX_NONEXISTENT})
        return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "attributes " + std::to_string(i) + " has unknown bits");
      m.subscribed = a & CMAIL_IMAP_MAILBOX_SUBSCRIBED;
      m.exists = !(a & CMAIL_IMAP_MAILBOX_NONEXISTENT);
      list.push_back(std::move(m));
    }
    return complete(s, imap::Verdict::mailboxes(std::move(list)), errmsg);
  });
}

int cmail_imap_server_counts(cmail_imap_server* s, const cmail_imap_status* counts, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_STATUS}, "_counts()", errmsg)) return rc;
  if (!counts) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "counts is NULL");
  imap::MailboxStatus st;
  st.messages = counts->messages;
  st.recent = counts->recent;
  st.uidnext = counts->uidnext;
  st.uidvalidity = counts->uidvalidity;
  st.unseen = counts->unseen;
  st.deleted = counts->deleted;
  st.size = counts->size;
  st.highest_modseq = counts->highest_modseq;
  return complete(s, imap::Verdict::counts(st), errmsg);
}

int cmail_imap_server_selected(cmail_imap_server* s, uint32_t uidvalidity, uint32_t uidnext, uint64_t highest_modseq,
                               int read_only, const uint32_t* uids, const uint32_t* flags,
                               const char* const* kws, const uint64_t* modseqs, size_t count,
                               const char* mailbox_keywords, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_SELECT}, "_selected()", errmsg)) return rc;
  return c::guard(errmsg, [&] {
    imap::SelectResult r;
    if (std::string e = states(count, uids, flags, kws, modseqs, r.messages); !e.empty())
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, e);
    // RFC 9051 2.3.1.1: UIDVALIDITY is non-zero, and UIDNEXT is above every UID.
    if (uidvalidity == 0) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uidvalidity is 0");
    if (count && uidnext <= uids[count - 1]) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uidnext is not above every uid");
    auto k = keywords(mailbox_keywords);
    if (!k) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "mailbox_keywords are not atoms separated by spaces");
    r.uidvalidity = uidvalidity;
    r.uidnext = uidnext;
    r.highest_modseq = highest_modseq;
    r.keywords = std::move(*k);
    r.read_only = read_only;
    return complete(s, imap::Verdict::selected(std::move(r)), errmsg);
  });
}

int cmail_imap_server_changes(cmail_imap_server* s, uint32_t uidnext, uint64_t highest_modseq, const uint32_t* uids,
                              const uint32_t* flags, const char* const* kws, const uint64_t* modseqs, size_t count,
                              const uint32_t* expunged, size_t expunged_count, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_CHANGES}, "_changes()", errmsg)) return rc;
  return c::guard(errmsg, [&] {
    imap::MailboxChanges ch;
    if (std::string e = states(count, uids, flags, kws, modseqs, ch.messages); !e.empty())
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, e);
    if (std::string e = uid_list(expunged, expunged_count, ch.expunged); !e.empty())
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "expunged: " + e);
    ch.uidnext = uidnext;
    ch.highest_modseq = highest_modseq;
    return complete(s, imap::Verdict::changes(std::move(ch)), errmsg);
  });
}

int cmail_imap_server_expunged(cmail_imap_server* s, const uint32_t* uids, size_t count, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_EXPUNGE}, "_expunged()", errmsg)) return rc;
  return c::guard(errmsg, [&] {
    std::vector<std::uint32_t> list;
    if (std::string e = uid_list(uids, count, list); !e.empty()) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, e);
    return complete(s, imap::Verdict::expunged(std::move(list)), errmsg);
  });
}

int cmail_imap_server_stored(cmail_imap_server* s, const uint32_t* uids, const uint32_t* flags,
                             const char* const* kws, const uint64_t* modseqs, size_t count, const uint32_t* modified,
                             size_t modified_count, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_STORE}, "_stored()", errmsg)) return rc;
  return c::guard(errmsg, [&] {
    imap::StoreResult r;
    if (std::string e = states(count, uids, flags, kws, modseqs, r.messages); !e.empty())
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, e);
    if (std::string e = uid_list(modified, modified_count, r.modified); !e.empty())
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "modified: " + e);
    return complete(s, imap::Verdict::stored(std::move(r)), errmsg);
  });
}

int cmail_imap_server_copied(cmail_imap_server* s, uint32_t uidvalidity, const uint32_t* source,
                             const uint32_t* target, size_t count, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_COPY}, "_copied()", errmsg)) return rc;
  if (count && (!source || !target)) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "source or target is NULL");
  // RFC 4315 3: COPYUID names the target's UIDVALIDITY (non-zero, RFC 9051 2.3.1.1).
  if (uidvalidity == 0) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uidvalidity is 0");
  return c::guard(errmsg, [&] {
    imap::CopyResult r;
    r.uidvalidity = uidvalidity;
    if (std::string e = uid_list(source, count, r.source); !e.empty()) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, e);
    if (std::string e = uid_list(target, count, r.target); !e.empty()) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, e);
    if (!std::is_sorted(r.source.begin(), r.source.end()))
      return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "source uids are not ascending");
    return complete(s, imap::Verdict::copied(std::move(r)), errmsg);
  });
}

int cmail_imap_server_appended(cmail_imap_server* s, uint32_t uidvalidity, uint32_t uid, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_APPEND_END}, "_appended()", errmsg)) return rc;
  // RFC 4315 3: APPENDUID carries a non-zero UIDVALIDITY and UID.
  if (uidvalidity == 0 || uid == 0) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uidvalidity or uid is 0");
  return complete(s, imap::Verdict::appended({uidvalidity, uid}), errmsg);
}

int cmail_imap_server_message(cmail_imap_server* s, const cmail_imap_message* m, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_FETCH, CMAIL_IMAP_EVENT_SEARCH}, "_message()", errmsg)) return rc;
  if (!m) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "message is NULL");
  auto at = s->position.find(m->uid);
  if (at == s->position.end())
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uid " + std::to_string(m->uid) + " was not asked for");
  if (s->given[at->second]) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "uid " + std::to_string(m->uid) + " was given already");
  if (m->flags & ~kAllFlags) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "flags has bits that are not CMAIL_IMAP_*");
  if (!m->octets && m->octets_len) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "octets is NULL");
  if (s->need_octets && !m->octets) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "the request needs the octets");
  if (m->octets_len > s->max_message)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "the message is over max_message octets");
  return c::guard(errmsg, [&] {
    auto kw = keywords(m->keywords);
    if (!kw) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "keywords are not atoms separated by spaces");
    const std::string_view octets(m->octets ? m->octets : "", m->octets_len);
    const std::uint64_t size = m->octets ? m->octets_len : m->size;
    if (s->awaiting == CMAIL_IMAP_EVENT_SEARCH) {
      imap::MessageView v;
      v.seq = at->second + 1;  // the view's positions are the sequence numbers
      v.uid = m->uid;
      v.flags = m->flags;
      v.keywords = *kw;
      v.internal_date = m->internal_date;
      v.size = size;
      v.modseq = m->modseq;
      std::optional<mail::Part> tree;
      std::optional<imap::StoredMessageText> text;
      if (m->octets) {
        tree = mail::parse_structure(octets);
        text.emplace(octets, *tree);
        v.text = &*text;
      }
      // The message is evaluated now and not kept: a SEARCH holds one message at a time.
      if (imap::matches(s->key, v, s->context)) s->found.push_back({v.seq, v.uid, v.modseq});
      s->given[at->second] = true;
      return c::ok(errmsg);
    }
    const imap::FetchNeeds& needs = s->needs;
    s->given[at->second] = true;
    const bool seen_set = needs.set_seen && m->seen_set;
    // RFC 7162 3.1.4.1: CHANGEDSINCE sends only what changed after it (\Seen set now did).
    if (needs.changed_since && m->modseq <= *needs.changed_since && !seen_set) return c::ok(errmsg);
    imap::FetchedMessage f;
    f.state.uid = m->uid;
    f.state.flags.system = m->flags;
    f.state.flags.keywords = std::move(*kw);
    f.state.modseq = m->modseq;
    f.internal_date = m->internal_date;
    f.size = size;
    f.seen_set = seen_set;
    if (needs.structure) f.structure = mail::parse_structure(octets);
    if (needs.content) {
      if (f.structure) {
        // Only the octets the items read are kept (cmail/imap/fetch.h, content_ranges).
        for (const imap::OctetRange& r : imap::content_ranges(*f.structure, needs.content_items)) {
          if (r.offset >= octets.size()) continue;
          f.content.push_back({r.offset, std::string(octets.substr(r.offset, r.length))});
        }
      } else {
        f.content.push_back({0, std::string(octets)});
      }
    }
    s->fetched.push_back(std::move(f));
    return c::ok(errmsg);
  });
}

int cmail_imap_server_done(cmail_imap_server* s, char** errmsg) {
  if (int rc = expect(s, {CMAIL_IMAP_EVENT_FETCH, CMAIL_IMAP_EVENT_SEARCH}, "_done()", errmsg)) return rc;
  return c::guard(errmsg, [&] {
    if (s->awaiting == CMAIL_IMAP_EVENT_SEARCH) {
      std::vector<imap::SearchMatch> found = std::move(s->found);
      std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
      return complete(s, imap::Verdict::found(std::move(found)), errmsg);
    }
    return complete(s, imap::Verdict::fetched(std::move(s->fetched)), errmsg);
  });
}

int cmail_imap_server_reject(cmail_imap_server* s, int code, const char* text, char** errmsg) {
  if (code < CMAIL_IMAP_RESP_NONE || code > CMAIL_IMAP_RESP_USEATTR)
    return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "code is not a CMAIL_IMAP_RESP_* value");
  if (!c::one_line(text)) return c::fail(errmsg, CMAIL_INVALID_ARGUMENT, "text holds a line end");
  return c::guard(errmsg, [&] {
    return complete(s, imap::Verdict::reject(static_cast<imap::RespCode>(code), c::str(text, "Refused")), errmsg);
  });
}

int cmail_imap_server_fail(cmail_imap_server* s, const char* reason, char** errmsg) {
  return c::guard(errmsg, [&] {
    return complete(s, imap::Verdict::failed(Status::internal(c::str(reason, "backend failure"))), errmsg);
  });
}

}  // extern "C"
