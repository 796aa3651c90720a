// The IMAP side of store::Mailboxes: folders, subscriptions, APPEND, COPY, MOVE, STORE with
// UNCHANGEDSINCE, changes since a modseq, stored structures and the mail notify file.
#include "store/schema.h"
#include "testutil.h"

#include <cmail/mail/structure.h>
#include <cmail/store/directory.h>
#include <cmail/store/mailbox.h>
#include <cmail/store/spool.h>
#include <cmail/store/store.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

using namespace cmail;
using namespace cmail::test;

namespace {

const std::string kMultipart =
    "From: Ann <ann@example.test>\r\n"
    "Subject: parts\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "first\r\n"
    "--b1\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>second</p>\r\n"
    "--b1--\r\n";

store::Delivery message_for(const std::string& user, std::string data = "Subject: hi\r\n\r\nbody\r\n",
                            std::string folder = "INBOX") {
  store::Delivery d;
  d.ident = "id-" + user;
  d.envelope_from = "sender@remote.test";
  d.data = std::move(data);
  d.local.push_back({user, user + "@local.test", std::move(folder)});
  return d;
}

// A message handed over in pieces, as an IMAP literal arrives.
class PieceSource final : public proto::Source {
 public:
  explicit PieceSource(std::string text, std::size_t piece) : text_(std::move(text)), piece_(piece) {}
  Status read(std::size_t max, std::string& out) override {
    const std::size_t n = std::min({max, piece_, text_.size() - pos_});
    out.append(text_, pos_, n);
    pos_ += n;
    reads_++;
    return Status();
  }
  int reads_ = 0;

 private:
  std::string text_;
  std::size_t piece_;
  std::size_t pos_ = 0;
};

std::vector<std::uint32_t> uids_of(const std::vector<store::MessageInfo>& v) {
  std::vector<std::uint32_t> out;
  for (auto& m : v) out.push_back(m.uid);
  return out;
}

std::vector<std::uint32_t> uids_in(store::Store& s, const std::string& user, const std::string& folder) {
  auto v = s.mailboxes().list_messages(user, folder);
  REQUIRE_MESSAGE(v.has_value(), v.error().to_string());
  return uids_of(*v);
}

std::string notify_bytes(const std::string& db) { return read_file(store::notify_path(db)); }

}  // namespace

TEST_CASE("mailbox: create_folder: special use, not subscribed, errors") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  auto f = mb.create_folder("alice", "Work/2026", "\\Archive");
  REQUIRE_MESSAGE(f.has_value(), f.error().to_string());
  CHECK(f->name == "Work/2026");
  CHECK(f->special_use == "\\Archive");
  CHECK(f->uidnext == 1);
  CHECK_FALSE(f->subscribed);
  CHECK(f->uidvalidity > 0);
  CHECK(mb.create_folder("alice", "Work/2026").error().code() == Status::Code::AlreadyExists);
  CHECK(mb.create_folder("alice", "inbox").error().code() == Status::Code::AlreadyExists);
  CHECK(mb.create_folder("alice", "").error().code() == Status::Code::InvalidArgument);
  CHECK(mb.create_folder("nobody", "X").error().code() == Status::Code::NotFound);
  auto state = mb.folder_state("alice", "Work/2026");
  REQUIRE(state.has_value());
  CHECK(state->uidvalidity == f->uidvalidity);
  CHECK(mb.folder_state("alice", "Nope").error().code() == Status::Code::NotFound);
}

TEST_CASE("mailbox: a re-created folder never gets the UIDVALIDITY of a deleted one") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  std::set<std::uint32_t> seen;
  // Many times within one second: the clock alone would repeat itself.
  for (int i = 0; i < 5; ++i) {
    auto f = mb.create_folder("alice", "Box");
    REQUIRE(f.has_value());
    CHECK(seen.insert(f->uidvalidity).second);
    REQUIRE(mb.delete_folder("alice", "Box").ok());
  }
  // Also when the deleted folder had the largest value of all.
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM folders WHERE folder_name = 'Box'") == 0);
  auto again = mb.create_folder("alice", "Box");
  REQUIRE(again.has_value());
  CHECK(again->uidvalidity > *seen.rbegin());
}

TEST_CASE("mailbox: list_messages of a UID range reads only that range, in UID order") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("alice", "Box").has_value());
  for (int i = 0; i < 6; ++i)
    REQUIRE(mb.append("alice", "Box", std::string_view("Subject: r\r\n\r\nx\r\n")).has_value());
  REQUIRE(mb.ensure_folder("alice", "INBOX").has_value());
  REQUIRE(mb.append("alice", "INBOX", std::string_view("Subject: other\r\n\r\ny\r\n")).has_value());
  REQUIRE(mb.expunge_uids("alice", "Box", {3}).has_value());
  auto r = mb.list_messages("alice", "Box", 2, 5);
  REQUIRE_MESSAGE(r.has_value(), r.error().to_string());
  CHECK(uids_of(*r) == std::vector<std::uint32_t>{2, 4, 5});  // 3 is expunged; 1 and 6 outside
  CHECK(uids_of(*mb.list_messages("alice", "Box", 6, 100)) == std::vector<std::uint32_t>{6});
  CHECK(mb.list_messages("alice", "Box", 5, 2)->empty());
  CHECK(uids_of(*mb.list_messages("alice", "INBOX", 1, 1)) == std::vector<std::uint32_t>{1});
  CHECK(mb.list_messages("alice", "Missing", 1, 10)->empty());
}

TEST_CASE("mailbox: read_message_ranges reads the ranges asked of each message, cut at its end") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.ensure_folder("alice", "INBOX").has_value());
  const std::string big = "Subject: big\r\n\r\n" + std::string(300000, 'x') + "tail\r\n";
  const std::vector<std::string> texts = {"Subject: 1\r\n\r\none\r\n", big, ""};
  for (const std::string& t : texts) REQUIRE(mb.append("alice", "INBOX", std::string_view(t)).has_value());
  auto list = mb.list_messages("alice", "INBOX");
  REQUIRE(list->size() == 3);
  using R = store::Mailboxes::OctetRanges;
  auto got = mb.read_message_ranges({(*list)[1].ref, (*list)[0].ref, (*list)[2].ref},
                                    {R{{0, 12}, {big.size() - 6, 100}}, R{{14, 3}, {50, 4}}, R{{0, 10}}});
  REQUIRE_MESSAGE(got.has_value(), got.error().to_string());
  REQUIRE(got->size() == 3);
  CHECK((*got)[0].size == big.size());
  REQUIRE((*got)[0].pieces.size() == 2);
  CHECK((*got)[0].pieces[0] == std::pair<std::uint64_t, std::string>{0, "Subject: big"});
  CHECK((*got)[0].pieces[1] == std::pair<std::uint64_t, std::string>{big.size() - 6, "tail\r\n"});
  CHECK((*got)[1].size == texts[0].size());
  REQUIRE((*got)[1].pieces.size() == 2);
  CHECK((*got)[1].pieces[0].second == "one");
  CHECK((*got)[1].pieces[1].second.empty());  // past the end
  CHECK((*got)[2].size == 0);
  CHECK(std::all_of((*got)[2].pieces.begin(), (*got)[2].pieces.end(), [](const auto& p) { return p.second.empty(); }));
  REQUIRE(mb.expunge_uids("alice", "INBOX", {1}).has_value());
  CHECK(mb.read_message_ranges({(*list)[0].ref}, {R{{0, 1}}}).error().is_not_found());
}

TEST_CASE("mailbox: read_messages gives the octets in the order asked; a missing one is NotFound") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.ensure_folder("alice", "INBOX").has_value());
  const std::vector<std::string> texts = {"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\ntwo\r\n", ""};
  for (const std::string& t : texts) REQUIRE(mb.append("alice", "INBOX", std::string_view(t)).has_value());
  auto list = mb.list_messages("alice", "INBOX");
  REQUIRE(list->size() == 3);
  auto got = mb.read_messages({(*list)[2].ref, (*list)[0].ref, (*list)[1].ref});
  REQUIRE_MESSAGE(got.has_value(), got.error().to_string());
  CHECK(*got == std::vector<std::string>{texts[2], texts[0], texts[1]});
  CHECK(mb.read_messages({})->empty());
  REQUIRE(mb.expunge_uids("alice", "INBOX", {1}).has_value());
  CHECK(mb.read_messages({(*list)[1].ref, (*list)[0].ref}).error().is_not_found());
  // read_structures: the same trees read_structure() gives, in the order asked.
  auto trees = mb.read_structures({(*list)[2].ref, (*list)[1].ref});
  REQUIRE_MESSAGE(trees.has_value(), trees.error().to_string());
  REQUIRE(trees->size() == 2);
  CHECK((*trees)[0] == *mb.read_structure((*list)[2].ref));
  CHECK((*trees)[1] == *mb.read_structure((*list)[1].ref));
  CHECK((*trees)[1].body_length == 5);  // "two\r\n"
  CHECK(mb.read_structures({(*list)[0].ref}).error().is_not_found());
}

TEST_CASE("mailbox: delete_folder removes its messages and expunge log; INBOX is refused") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("alice", "Old").has_value());
  REQUIRE(mb.create_folder("alice", "Old/Child").has_value());
  REQUIRE(mb.append("alice", "Old", std::string_view("Subject: a\r\n\r\nx\r\n")).has_value());
  auto second = mb.append("alice", "Old", std::string_view("Subject: b\r\n\r\ny\r\n"));
  REQUIRE(second.has_value());
  REQUIRE(mb.expunge_uids("alice", "Old", {second->uid}).has_value());
  REQUIRE(mb.append("alice", "Old/Child", std::string_view("Subject: c\r\n\r\nz\r\n")).has_value());
  REQUIRE(mb.set_subscribed("alice", "Old", true).ok());
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM expunged") == 1);

  REQUIRE(mb.delete_folder("alice", "Old").ok());
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox") == 1);  // the child's message stays
  CHECK(count(*c, "SELECT COUNT(*) FROM expunged") == 0);
  CHECK(mb.folder_state("alice", "Old").error().is_not_found());
  CHECK(mb.folder_state("alice", "Old/Child").has_value());
  // RFC 9051 6.3.7: the subscription is a name and stays.
  CHECK(*mb.subscriptions("alice") == std::vector<std::string>{"Old"});
  CHECK(mb.delete_folder("alice", "Old").is_not_found());
  CHECK(mb.delete_folder("alice", "INBOX").code() == Status::Code::InvalidArgument);
  CHECK(mb.delete_folder("alice", "Inbox").code() == Status::Code::InvalidArgument);
}

TEST_CASE("mailbox: rename keeps UIDs and UIDVALIDITY and takes the children along") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  auto a = mb.create_folder("alice", "A");
  auto ab = mb.create_folder("alice", "A/B");
  REQUIRE(mb.create_folder("alice", "AB").has_value());  // not a child of A
  REQUIRE(mb.create_folder("alice", "Taken").has_value());
  REQUIRE(mb.append("alice", "A/B", std::string_view("Subject: 1\r\n\r\n1\r\n")).has_value());
  REQUIRE(mb.append("alice", "A/B", std::string_view("Subject: 2\r\n\r\n2\r\n")).has_value());

  CHECK(mb.rename_folder("alice", "A", "Taken").code() == Status::Code::AlreadyExists);
  CHECK(mb.rename_folder("alice", "A", "INBOX").code() == Status::Code::AlreadyExists);
  CHECK(mb.rename_folder("alice", "Missing", "Z").is_not_found());
  CHECK(mb.rename_folder("alice", "A", "A/B/C").code() == Status::Code::InvalidArgument);

  REQUIRE(mb.rename_folder("alice", "A", "Z").ok());
  CHECK(mb.folder_state("alice", "A").error().is_not_found());
  auto z = mb.folder_state("alice", "Z");
  auto zb = mb.folder_state("alice", "Z/B");
  REQUIRE(z.has_value());
  REQUIRE(zb.has_value());
  CHECK(z->uidvalidity == a->uidvalidity);
  CHECK(zb->uidvalidity == ab->uidvalidity);
  CHECK(zb->uidnext == 3);
  CHECK(uids_in(*s, "alice", "Z/B") == std::vector<std::uint32_t>{1, 2});
  CHECK(mb.folder_state("alice", "AB").has_value());  // untouched

  // A child whose new name is taken: nothing is renamed.
  REQUIRE(mb.create_folder("alice", "Y/B").has_value());
  CHECK(mb.rename_folder("alice", "Z", "Y").code() == Status::Code::AlreadyExists);
  CHECK(mb.folder_state("alice", "Z").has_value());
  CHECK(mb.folder_state("alice", "Z/B").has_value());
}

TEST_CASE("mailbox: renaming INBOX moves its messages into a new folder and leaves INBOX empty") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  for (int i = 0; i < 3; ++i) REQUIRE(s->deliver_sync(message_for("alice")).ok());
  REQUIRE(mb.create_folder("alice", "INBOX/Sub").has_value());
  auto inbox = mb.folder_state("alice", "INBOX");
  REQUIRE(inbox.has_value());
  auto flagged = mb.update_flags("alice", "INBOX", {2}, store::FlagOp::Add, store::kFlagFlagged, {"$Work"});
  REQUIRE(flagged.has_value());

  REQUIRE(mb.rename_folder("alice", "inbox", "Archive/2026").ok());
  auto moved = mb.list_messages("alice", "Archive/2026");
  REQUIRE(moved.has_value());
  CHECK(uids_of(*moved) == std::vector<std::uint32_t>{1, 2, 3});  // new UIDs, in order
  CHECK((*moved)[1].flags == store::kFlagFlagged);
  CHECK((*moved)[1].keywords == "$Work");
  auto target = mb.folder_state("alice", "Archive/2026");
  REQUIRE(target.has_value());
  CHECK(target->uidvalidity != inbox->uidvalidity);
  CHECK(uids_in(*s, "alice", "INBOX").empty());
  auto after = mb.folder_state("alice", "INBOX");
  REQUIRE(after.has_value());
  CHECK(after->uidvalidity == inbox->uidvalidity);
  CHECK(after->uidnext == inbox->uidnext);  // INBOX's UIDs are never reused
  CHECK(mb.folder_state("alice", "INBOX/Sub").has_value());  // inferiors stay (RFC 9051 6.3.6)
  // Clients resynchronizing INBOX learn that the messages went.
  auto changes = mb.changes_since("alice", "INBOX", inbox->highest_modseq);
  REQUIRE(changes.has_value());
  CHECK(changes->expunged == std::vector<std::uint32_t>{1, 2, 3});
  // New mail still arrives in INBOX.
  REQUIRE(s->deliver_sync(message_for("alice")).ok());
  CHECK(uids_in(*s, "alice", "INBOX") == std::vector<std::uint32_t>{4});
  auto problems = s->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
}

TEST_CASE("mailbox: subscriptions are names, with or without a folder") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("alice", "Lists").has_value());
  REQUIRE(mb.set_subscribed("alice", "Lists", true).ok());
  REQUIRE(mb.set_subscribed("alice", "Not/There", true).ok());
  REQUIRE(mb.set_subscribed("alice", "Not/There", true).ok());  // twice is once
  CHECK(*mb.subscriptions("alice") == std::vector<std::string>{"Lists", "Not/There"});
  CHECK(mb.folder_state("alice", "Lists")->subscribed);
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT folder_subscribed FROM folders WHERE folder_name = 'Lists'") == 1);
  REQUIRE(mb.set_subscribed("alice", "Lists", false).ok());
  CHECK_FALSE(mb.folder_state("alice", "Lists")->subscribed);
  CHECK(count(*c, "SELECT folder_subscribed FROM folders WHERE folder_name = 'Lists'") == 0);
  CHECK(*mb.subscriptions("alice") == std::vector<std::string>{"Not/There"});
  CHECK(mb.set_subscribed("nobody", "X", true).is_not_found());
  // Delivery's INBOX is subscribed, as folder_subscribed's default always said.
  REQUIRE(s->deliver_sync(message_for("alice")).ok());
  CHECK(mb.folder_state("alice", "INBOX")->subscribed);
}

TEST_CASE("mailbox: ensure_special_folders creates what is missing, once") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("alice", "Trash").has_value());                // the name, no attribute
  REQUIRE(mb.create_folder("alice", "Spam", "\\Junk").has_value());      // the attribute, another name
  REQUIRE(mb.ensure_special_folders("alice").ok());
  auto folders = mb.list_folders("alice");
  REQUIRE(folders.has_value());
  std::map<std::string, std::string> uses;
  for (auto& f : *folders) uses[f.name] = f.special_use;
  CHECK(uses == std::map<std::string, std::string>{{"Archive", "\\Archive"}, {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"},
                                                   {"Spam", "\\Junk"}, {"Trash", "\\Trash"}});
  CHECK(mb.folder_state("alice", "Sent")->subscribed);
  const auto before = s->writer_stats().transactions;
  REQUIRE(mb.ensure_special_folders("alice").ok());
  CHECK(s->writer_stats().transactions == before);  // nothing to write: one read
  CHECK(mb.ensure_special_folders("nobody").is_not_found());
}

TEST_CASE("mailbox: append stores flags, keywords, internal date, sizes and structure; advances the folder") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("alice", "Drafts").has_value());
  auto before = mb.folder_state("alice", "Drafts");
  auto a = mb.append("alice", "Drafts", std::string_view(kMultipart), store::kFlagDraft | store::kFlagSeen,
                     "$Label1 $label1 Todo", 1700000000);
  REQUIRE_MESSAGE(a.has_value(), a.error().to_string());
  CHECK(a->uid == 1);
  CHECK(a->uidvalidity == before->uidvalidity);
  CHECK(a->modseq > before->highest_modseq);
  auto after = mb.folder_state("alice", "Drafts");
  CHECK(after->uidnext == 2);
  CHECK(after->highest_modseq == a->modseq);
  auto msgs = mb.list_messages("alice", "Drafts");
  REQUIRE(msgs->size() == 1);
  const store::MessageInfo& m = (*msgs)[0];
  CHECK(m.flags == (store::kFlagDraft | store::kFlagSeen));
  CHECK(m.keywords == "$Label1 Todo");
  CHECK(m.internal_date == 1700000000);
  CHECK(m.size == static_cast<std::int64_t>(kMultipart.size()));
  CHECK(m.wire_size == static_cast<std::int64_t>(proto::wire_size(kMultipart)));
  CHECK(*mb.read_message(m.ref) == kMultipart);
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT mail_read FROM mailbox") == 1);
  auto stored = c->query_text("SELECT mail_structure FROM mailbox");
  REQUIRE(stored.has_value());
  CHECK(mail::decode_structure(*stored) == mail::parse_structure(kMultipart));
  auto tree = mb.read_structure(m.ref);
  REQUIRE(tree.has_value());
  REQUIRE(tree->children.size() == 2);
  CHECK(tree->children[1].subtype == "html");

  CHECK(mb.append("alice", "Nope", std::string_view("x")).error().is_not_found());  // TRYCREATE
  CHECK(mb.append("nobody", "INBOX", std::string_view("x")).error().is_not_found());
}

TEST_CASE("mailbox: a large append goes through a spool, is stored byte-exact with its structure") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.ensure_folder("alice", "INBOX").has_value());
  std::string big = "Subject: big\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\n";
  for (int i = 0; i < 30000; ++i) big += "line " + std::to_string(i) + " of a long first part\r\n";
  big += "--zz\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--zz--\r\n";
  REQUIRE(big.size() > 3 * 256 * 1024);
  PieceSource src(big, 7000);
  auto a = mb.append("alice", "INBOX", src, 0, "", 0);
  REQUIRE_MESSAGE(a.has_value(), a.error().to_string());
  CHECK(src.reads_ > 100);
  auto msgs = mb.list_messages("alice");
  REQUIRE(msgs->size() == 1);
  CHECK((*msgs)[0].size == static_cast<std::int64_t>(big.size()));
  CHECK((*msgs)[0].wire_size == static_cast<std::int64_t>(proto::wire_size(big)));
  CHECK(*mb.read_message((*msgs)[0].ref) == big);
  auto tree = mb.read_structure((*msgs)[0].ref);
  REQUIRE(tree.has_value());
  CHECK(*tree == mail::parse_structure(big));
  CHECK(tree->children.size() == 2);
  // Copied and moved a chunk at a time, byte-exact.
  REQUIRE(mb.create_folder("alice", "Big").has_value());
  auto cp = mb.copy("alice", "INBOX", {a->uid}, "Big");
  REQUIRE_MESSAGE(cp.has_value(), cp.error().to_string());
  auto mv = mb.move("alice", "Big", {cp->uids[0].second}, "INBOX");
  REQUIRE_MESSAGE(mv.has_value(), mv.error().to_string());
  auto inbox = mb.list_messages("alice");
  REQUIRE(inbox->size() == 2);
  CHECK(*mb.read_message((*inbox)[1].ref) == big);
  CHECK((*inbox)[1].size == static_cast<std::int64_t>(big.size()));
  CHECK(*mb.read_structure((*inbox)[1].ref) == *tree);
  // Nothing is left next to the database.
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    CHECK(e.path().filename().string().find("spool") == std::string::npos);
}

TEST_CASE("mailbox: copy keeps flags and dates, gives new UIDs in order; missing UIDs are skipped") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("alice", "Dest").has_value());
  REQUIRE(mb.create_folder("alice", "Src").has_value());
  for (int i = 1; i <= 4; ++i)
    REQUIRE(mb.append("alice", "Src", std::string_view("Subject: " + std::to_string(i) + "\r\n\r\nx\r\n"),
                      i == 3 ? store::kFlagAnswered : 0u, i == 3 ? "Done" : "", 1600000000 + i).has_value());
  REQUIRE(mb.append("alice", "Dest", std::string_view("Subject: there\r\n\r\n")).has_value());
  auto dest = mb.folder_state("alice", "Dest");
  auto r = mb.copy("alice", "Src", {4, 3, 9, 3}, "Dest");
  REQUIRE_MESSAGE(r.has_value(), r.error().to_string());
  CHECK(r->uidvalidity == dest->uidvalidity);
  CHECK(r->uids == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{3, 2}, {4, 3}});
  auto msgs = mb.list_messages("alice", "Dest");
  REQUIRE(msgs->size() == 3);
  CHECK((*msgs)[1].flags == store::kFlagAnswered);
  CHECK((*msgs)[1].keywords == "Done");
  CHECK((*msgs)[1].internal_date == 1600000003);
  CHECK(*mb.read_message((*msgs)[1].ref) == "Subject: 3\r\n\r\nx\r\n");
  CHECK(mb.read_structure((*msgs)[1].ref).has_value());
  CHECK(uids_in(*s, "alice", "Src") == std::vector<std::uint32_t>{1, 2, 3, 4});  // copy leaves them
  CHECK(mb.copy("alice", "Src", {1}, "Nope").error().is_not_found());
  CHECK(mb.copy("alice", "Nope", {1}, "Dest").error().is_not_found());
}

TEST_CASE("mailbox: move copies and expunges in one transaction, all or nothing") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  for (int i = 0; i < 3; ++i) REQUIRE(s->deliver_sync(message_for("alice")).ok());
  REQUIRE(mb.create_folder("alice", "Done").has_value());
  auto c = raw(dir.file("m"));

  SUBCASE("a failure in the middle leaves everything as it was") {
    // The second copy fails (as a full disk would): the first copy and its expunge go too.
    c->exec("CREATE TRIGGER fail_second BEFORE INSERT ON mailbox WHEN NEW.mail_uid = 2 "
            "BEGIN SELECT RAISE(ABORT, 'injected'); END");
    auto inbox = mb.folder_state("alice", "INBOX");
    auto r = mb.move("alice", "INBOX", {1, 2}, "Done");
    CHECK_FALSE(r.has_value());
    CHECK(uids_in(*s, "alice", "INBOX") == std::vector<std::uint32_t>{1, 2, 3});
    CHECK(uids_in(*s, "alice", "Done").empty());
    CHECK(count(*c, "SELECT COUNT(*) FROM expunged") == 0);
    CHECK(mb.folder_state("alice", "INBOX")->highest_modseq == inbox->highest_modseq);
    CHECK(mb.folder_state("alice", "Done")->uidnext == 1);
  }
  SUBCASE("moved: gone from the source, logged with their modseq") {
    auto inbox = mb.folder_state("alice", "INBOX");
    auto r = mb.move("alice", "INBOX", {1, 3}, "Done");
    REQUIRE_MESSAGE(r.has_value(), r.error().to_string());
    CHECK(r->uids == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{1, 1}, {3, 2}});
    CHECK(uids_in(*s, "alice", "INBOX") == std::vector<std::uint32_t>{2});
    CHECK(uids_in(*s, "alice", "Done") == std::vector<std::uint32_t>{1, 2});
    auto changes = mb.changes_since("alice", "INBOX", inbox->highest_modseq);
    REQUIRE(changes.has_value());
    CHECK(changes->expunged == std::vector<std::uint32_t>{1, 3});
    CHECK(changes->messages.empty());
    CHECK(count(*c, "SELECT COUNT(*) FROM expunged WHERE exp_modseq > " + std::to_string(inbox->highest_modseq)) == 2);
  }
}

TEST_CASE("mailbox: update_flags adds, removes, replaces; no change, no modseq; UNCHANGEDSINCE") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  for (int i = 0; i < 3; ++i) REQUIRE(s->deliver_sync(message_for("alice")).ok());
  auto c = raw(dir.file("m"));
  auto modseq_of = [&](int uid) { return count(*c, "SELECT mail_modseq FROM mailbox WHERE mail_uid = " + std::to_string(uid)); };

  auto add = mb.update_flags("alice", "INBOX", {1, 2, 7}, store::FlagOp::Add, store::kFlagSeen, {"$Work"});
  REQUIRE_MESSAGE(add.has_value(), add.error().to_string());
  REQUIRE(add->changed.size() == 2);
  CHECK(add->changed[0].uid == 1);
  CHECK(add->changed[0].flags == store::kFlagSeen);
  CHECK(add->changed[0].keywords == "$Work");
  CHECK(add->changed[1].modseq > add->changed[0].modseq);
  CHECK(static_cast<std::uint64_t>(modseq_of(2)) == add->changed[1].modseq);
  CHECK(count(*c, "SELECT mail_read FROM mailbox WHERE mail_uid = 1") == 1);
  CHECK(mb.folder_state("alice", "INBOX")->highest_modseq == add->changed[1].modseq);

  // The same again changes nothing: no new modseq (RFC 7162 3.1.3).
  const auto m1 = modseq_of(1);
  auto same = mb.update_flags("alice", "INBOX", {1}, store::FlagOp::Add, store::kFlagSeen, {"$work"});
  REQUIRE(same.has_value());
  CHECK(same->changed.empty());
  CHECK(modseq_of(1) == m1);

  auto removed = mb.update_flags("alice", "INBOX", {1}, store::FlagOp::Remove, store::kFlagSeen, {"$WORK"});
  REQUIRE(removed.has_value());
  REQUIRE(removed->changed.size() == 1);
  CHECK(removed->changed[0].flags == 0);
  CHECK(removed->changed[0].keywords == "");
  CHECK(count(*c, "SELECT mail_read FROM mailbox WHERE mail_uid = 1") == 0);
  CHECK(c->query_text("SELECT mail_keywords FROM mailbox WHERE mail_uid = 1") == std::nullopt);

  auto replaced = mb.update_flags("alice", "INBOX", {3}, store::FlagOp::Replace, store::kFlagFlagged | store::kFlagDeleted,
                                  {"a", "b", "A"});
  REQUIRE(replaced.has_value());
  REQUIRE(replaced->changed.size() == 1);
  CHECK(replaced->changed[0].flags == (store::kFlagFlagged | store::kFlagDeleted));
  CHECK(replaced->changed[0].keywords == "a b");

  // UNCHANGEDSINCE: message 1 changed after the value given, message 2 did not.
  const std::uint64_t since = static_cast<std::uint64_t>(modseq_of(2));
  REQUIRE(static_cast<std::uint64_t>(modseq_of(1)) > since);
  auto cond = mb.update_flags("alice", "INBOX", {1, 2}, store::FlagOp::Add, store::kFlagAnswered, {}, since);
  REQUIRE(cond.has_value());
  CHECK(cond->modified == std::vector<std::uint32_t>{1});
  REQUIRE(cond->changed.size() == 1);
  CHECK(cond->changed[0].uid == 2);
  CHECK(count(*c, "SELECT mail_flags FROM mailbox WHERE mail_uid = 1") == 0);
  // UNCHANGEDSINCE 0 refuses every message (RFC 7162 3.1.3).
  auto zero = mb.update_flags("alice", "INBOX", {2, 3}, store::FlagOp::Add, store::kFlagSeen, {}, 0);
  REQUIRE(zero.has_value());
  CHECK(zero->modified == std::vector<std::uint32_t>{2, 3});
  CHECK(zero->changed.empty());
  CHECK(mb.update_flags("alice", "Nope", {1}, store::FlagOp::Add, 0, {}).error().is_not_found());
}

TEST_CASE("mailbox: changes_since lists changed messages and expunged UIDs from an index") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  for (int i = 0; i < 5; ++i) REQUIRE(s->deliver_sync(message_for("alice")).ok());
  auto start = mb.folder_state("alice", "INBOX");
  REQUIRE(mb.update_flags("alice", "INBOX", {4}, store::FlagOp::Add, store::kFlagFlagged, {}).has_value());
  auto gone = mb.expunge_uids("alice", "INBOX", {2, 5, 99});
  REQUIRE(gone.has_value());
  CHECK(*gone == std::vector<std::uint32_t>{2, 5});
  REQUIRE(s->deliver_sync(message_for("alice")).ok());

  auto ch = mb.changes_since("alice", "INBOX", start->highest_modseq);
  REQUIRE_MESSAGE(ch.has_value(), ch.error().to_string());
  CHECK(uids_of(ch->messages) == std::vector<std::uint32_t>{4, 6});
  CHECK(ch->messages[0].flags == store::kFlagFlagged);
  CHECK(ch->expunged == std::vector<std::uint32_t>{2, 5});
  CHECK(ch->folder.uidnext == 7);
  CHECK(ch->folder.highest_modseq == mb.folder_state("alice", "INBOX")->highest_modseq);
  auto none = mb.changes_since("alice", "INBOX", ch->folder.highest_modseq);
  REQUIRE(none.has_value());
  CHECK(none->messages.empty());
  CHECK(none->expunged.empty());
  CHECK(mb.changes_since("alice", "Nope", 0).error().is_not_found());

  auto c = raw(dir.file("m"));
  auto plan = [&](const std::string& sql) {
    auto p = c->prepare("EXPLAIN QUERY PLAN " + sql);
    std::string detail;
    while (p.step()) detail += p.text(3) + "\n";
    return detail;
  };
  CHECK(plan("SELECT mail_id FROM mailbox WHERE mail_folder = ?1 AND mail_modseq > ?2")
            .find("INDEX idx_mailbox_modseq (mail_folder=? AND mail_modseq>?)") != std::string::npos);
  CHECK(plan("SELECT exp_uid FROM expunged WHERE exp_folder = ?1 AND exp_modseq > ?2 ORDER BY exp_uid")
            .find("INDEX idx_expunged_modseq (exp_folder=? AND exp_modseq>?)") != std::string::npos);
}

TEST_CASE("mailbox: a user database holds appended, copied and moved mail; folders span both files") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  {
    auto c = store::detail::Connection::open(dir.file("carol.db3"), store::detail::Connection::Mode::Create, 1000);
    REQUIRE(c.has_value());
    (*c)->exec(store::detail::v9_install_sql(store::detail::DbKind::User));
  }
  insert_user(dir.file("m"), "carol", dir.file("carol.db3").c_str());
  auto& mb = s->mailboxes();
  REQUIRE(s->deliver_sync(message_for("carol", kMultipart)).ok());
  REQUIRE(mb.create_folder("carol", "Keep").has_value());
  auto a = mb.append("carol", "Keep", std::string_view("Subject: kept\r\n\r\nk\r\n"), store::kFlagSeen);
  REQUIRE_MESSAGE(a.has_value(), a.error().to_string());
  auto user = raw(dir.file("carol.db3"));
  auto master = raw(dir.file("m"));
  CHECK(count(*user, "SELECT COUNT(*) FROM mailbox") == 2);
  CHECK(count(*master, "SELECT COUNT(*) FROM mailbox") == 0);
  // The structure was stored at delivery, in the user database too.
  auto stored = user->query_text("SELECT mail_structure FROM mailbox WHERE mail_uid = 1 AND mail_envelopeto <> 'carol'");
  REQUIRE(stored.has_value());
  CHECK(mail::decode_structure(*stored) == mail::parse_structure(kMultipart));

  auto start = mb.folder_state("carol", "Keep");
  auto cp = mb.copy("carol", "INBOX", {1}, "Keep");
  REQUIRE_MESSAGE(cp.has_value(), cp.error().to_string());
  CHECK(cp->uids == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{1, 2}});
  auto fl = mb.update_flags("carol", "Keep", {2}, store::FlagOp::Add, store::kFlagFlagged, {});
  REQUIRE(fl.has_value());
  CHECK(fl->changed.size() == 1);
  auto mv = mb.move("carol", "Keep", {1}, "INBOX");
  REQUIRE(mv.has_value());
  CHECK(count(*user, "SELECT COUNT(*) FROM mailbox") == 3);
  auto ch = mb.changes_since("carol", "Keep", start->highest_modseq);
  REQUIRE(ch.has_value());
  CHECK(uids_of(ch->messages) == std::vector<std::uint32_t>{2});
  CHECK(ch->messages[0].ref.database == dir.file("carol.db3"));
  CHECK(ch->expunged == std::vector<std::uint32_t>{1});
  CHECK(uids_in(*s, "carol", "INBOX") == std::vector<std::uint32_t>{1, 2});

  REQUIRE(mb.delete_folder("carol", "Keep").ok());
  CHECK(count(*user, "SELECT COUNT(*) FROM mailbox") == 2);
  REQUIRE(mb.rename_folder("carol", "INBOX", "Old").ok());
  CHECK(uids_in(*s, "carol", "Old") == std::vector<std::uint32_t>{1, 2});
  CHECK(uids_in(*s, "carol", "INBOX").empty());
  auto problems = s->check();
  REQUIRE(problems.has_value());
  CHECK(problems->empty());
}

TEST_CASE("mailbox: the structure is stored at delivery, also for a spooled message after its Received field") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto c = raw(dir.file("m"));
  SUBCASE("in memory") {
    REQUIRE(s->deliver_sync(message_for("alice", kMultipart)).ok());
    auto stored = c->query_text("SELECT mail_structure FROM mailbox");
    REQUIRE(stored.has_value());
    CHECK(mail::decode_structure(*stored) == mail::parse_structure(kMultipart));
  }
  SUBCASE("spooled, with header lines before it") {
    const std::string received = "Received: from x\r\n\tby y with esmtp;\r\n\tThu, 3 Dec 2026 07:00:00 +0000\r\n";
    auto spool = s->create_spool();
    REQUIRE(spool.has_value());
    for (std::size_t i = 0; i < kMultipart.size(); i += 5) REQUIRE((*spool)->append(kMultipart.substr(i, 5)).ok());
    auto d = message_for("alice", received);
    d.spool = std::move(*spool);
    REQUIRE(s->deliver_sync(d).ok());
    auto stored = c->query_text("SELECT mail_structure FROM mailbox");
    REQUIRE(stored.has_value());
    CHECK(mail::decode_structure(*stored) == mail::parse_structure(received + kMultipart));
  }
  SUBCASE("spooled, after a start that is more than header lines") {
    const std::string start = "Content-Type: text/html\r\n";
    auto spool = s->create_spool();
    REQUIRE(spool.has_value());
    REQUIRE((*spool)->append("Subject: x\r\n\r\n<p>hi</p>\r\n").ok());
    auto d = message_for("alice", start);
    d.spool = std::move(*spool);
    REQUIRE(s->deliver_sync(d).ok());
    auto stored = c->query_text("SELECT mail_structure FROM mailbox");
    REQUIRE(stored.has_value());
    auto tree = mail::decode_structure(*stored);
    REQUIRE(tree.has_value());
    CHECK(*tree == mail::parse_structure(start + "Subject: x\r\n\r\n<p>hi</p>\r\n"));
    CHECK(tree->subtype == "html");
  }
}

TEST_CASE("mailbox: a row without a structure gets one when first read, written back") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto c = raw(dir.file("m"));
  // As another program (or a version before 13) writes it: no structure.
  c->exec("INSERT INTO mailbox (mail_user, mail_envelopeto, mail_envelopefrom, mail_data) VALUES ('alice', 'a@x', 'b@y', '" +
          kMultipart + "')");
  auto msgs = s->mailboxes().list_messages("alice");
  REQUIRE(msgs.has_value());
  REQUIRE(msgs->size() == 1);
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_structure IS NULL") == 1);
  auto tree = s->mailboxes().read_structure((*msgs)[0].ref);
  REQUIRE_MESSAGE(tree.has_value(), tree.error().to_string());
  CHECK(*tree == mail::parse_structure(kMultipart));
  auto stored = c->query_text("SELECT mail_structure FROM mailbox");
  REQUIRE(stored.has_value());
  CHECK(mail::decode_structure(*stored) == *tree);
  // A damaged value is parsed again too.
  c->exec("UPDATE mailbox SET mail_structure = x'00'");
  auto again = s->mailboxes().read_structure((*msgs)[0].ref);
  REQUIRE(again.has_value());
  CHECK(*again == *tree);
  CHECK(s->mailboxes().read_structure({"", 999}).error().is_not_found());
}

TEST_CASE("mailbox: the notify file changes after a delivery, a flag change, an append and an expunge") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  const std::string path = store::notify_path(dir.file("m"));
  CHECK(path == dir.file("m") + "-notify");
  CHECK_FALSE(std::filesystem::exists(path));
  REQUIRE(s->deliver_sync(message_for("alice")).ok());
  REQUIRE(std::filesystem::exists(path));
  std::string last = notify_bytes(dir.file("m"));
  CHECK(last.size() == 8);
  auto changed = [&] {
    std::string now = notify_bytes(dir.file("m"));
    bool moved = now != last;
    last = now;
    return moved;
  };
  REQUIRE(s->mailboxes().update_flags("alice", "INBOX", {1}, store::FlagOp::Add, store::kFlagSeen, {}).has_value());
  CHECK(changed());
  // A STORE that changes nothing wakes nobody.
  REQUIRE(s->mailboxes().update_flags("alice", "INBOX", {1}, store::FlagOp::Add, store::kFlagSeen, {}).has_value());
  CHECK_FALSE(changed());
  REQUIRE(s->mailboxes().append("alice", "INBOX", std::string_view("Subject: a\r\n\r\n")).has_value());
  CHECK(changed());
  auto msgs = s->mailboxes().list_messages("alice");
  REQUIRE(s->mailboxes().expunge("alice", {(*msgs)[0].ref}).ok());  // POP3's expunge
  CHECK(changed());
  // A change that is not mail (a subscription) leaves it alone.
  REQUIRE(s->mailboxes().set_subscribed("alice", "X", true).ok());
  CHECK_FALSE(changed());
  REQUIRE(s->directory().delete_user("alice").ok());  // cmail-admin user delete: the mail goes
  CHECK(changed());
  CHECK(store::notify_path("") == "");
}

TEST_CASE("mailbox: an unusable user database: append falls back to the master, changes to mail fail whole") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "dave", dir.file("missing.db3").c_str());
  auto& mb = s->mailboxes();
  REQUIRE(mb.create_folder("dave", "Keep").has_value());
  auto a = mb.append("dave", "Keep", std::string_view("Subject: x\r\n\r\n"));
  REQUIRE_MESSAGE(a.has_value(), a.error().to_string());  // as delivery does (docs/store.md)
  auto c = raw(dir.file("m"));
  CHECK(count(*c, "SELECT COUNT(*) FROM mailbox WHERE mail_user = 'dave'") == 1);
  CHECK_FALSE(std::filesystem::exists(dir.file("missing.db3")));
  // Messages there might be missed: nothing is changed rather than a part.
  auto fl = mb.update_flags("dave", "Keep", {a->uid}, store::FlagOp::Add, store::kFlagSeen, {});
  CHECK(fl.error().code() == Status::Code::IoError);
  CHECK(mb.move("dave", "Keep", {a->uid}, "Keep").error().code() == Status::Code::IoError);
  CHECK(mb.delete_folder("dave", "Keep").code() == Status::Code::IoError);
  CHECK(count(*c, "SELECT mail_flags FROM mailbox WHERE mail_user = 'dave'") == 0);
  CHECK(mb.folder_state("dave", "Keep").has_value());
}

TEST_CASE("mailbox: many UIDs at once (a client's 1:*) are found by one range, gaps and all") {
  TempDir dir;
  auto s = open_store(dir.file("m"));
  insert_user(dir.file("m"), "alice");
  auto& mb = s->mailboxes();
  REQUIRE(mb.ensure_folder("alice", "INBOX").has_value());
  for (int i = 0; i < 60; ++i) REQUIRE(mb.append("alice", "INBOX", std::string_view("Subject: n\r\n\r\n")).has_value());
  std::vector<std::uint32_t> odd;
  for (std::uint32_t uid = 1; uid <= 60; uid += 2) odd.push_back(uid);
  REQUIRE(mb.expunge_uids("alice", "INBOX", odd).has_value());
  std::vector<std::uint32_t> all;
  for (std::uint32_t uid = 1; uid <= 100; ++uid) all.push_back(uid);
  all.push_back(4000000000u);
  auto r = mb.update_flags("alice", "INBOX", all, store::FlagOp::Add, store::kFlagSeen, {});
  REQUIRE(r.has_value());
  REQUIRE(r->changed.size() == 30);
  CHECK(r->changed.front().uid == 2);
  CHECK(r->changed.back().uid == 60);
  CHECK(std::is_sorted(r->changed.begin(), r->changed.end(),
                       [](const store::FlagChange& a, const store::FlagChange& b) { return a.uid < b.uid; }));
  // A sparse set beyond the seek threshold picks exactly its members.
  std::vector<std::uint32_t> some{60, 2, 58};
  for (std::uint32_t uid = 1; uid <= 80; uid += 2) some.push_back(uid);  // expunged or never given
  auto cp = mb.copy("alice", "INBOX", some, "INBOX");
  REQUIRE(cp.has_value());
  CHECK(cp->uids == std::vector<std::pair<std::uint32_t, std::uint32_t>>{{2, 61}, {58, 62}, {60, 63}});
}
