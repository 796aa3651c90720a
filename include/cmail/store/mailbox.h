// cmail/store/mailbox.h: stored mail, as POP3 and IMAP will both read it.
//
// Every stored message (master `mailbox` row, or a row of the user's own database) belongs to
// a folder of its user. A folder has a UIDVALIDITY, a UIDNEXT and a highest modification
// sequence (RFC 9051 2.3.1.1, RFC 7162 3.1); a message has a UID unique and ascending within
// its folder, flags, keywords, a modification sequence, an internal date and its size in
// octets. Folders live in the master database even for users with a user database, so UIDs
// are allocated in one place. Expunged UIDs are logged with their modseq for QRESYNC. Mail that
// other programs insert directly into the database is numbered when first listed or delivered to.
//
// For IMAP, folders can be created, deleted, renamed and subscribed to (subscriptions are names,
// RFC 9051 6.3.7), messages appended, copied, moved and flagged with CONDSTORE's UNCHANGEDSINCE,
// and what changed since a modseq read from one index range. Each message keeps its MIME
// structure (mail::encode_structure(), cmail/mail/structure.h), parsed while it is stored.
// After every commit that changes some user's mail, the writer bumps a counter in the file
// notify_path(database), which other processes may watch (docs/store.md#the-mail-notify-file).
//
// Thread-safety: every method may be called from any thread; writes go through the Store's
// writer and return after the commit, durable (synchronous=FULL) and all or nothing. Obtain it
// from Store::mailboxes().
#pragma once

#include <cmail/export.h>
#include <cmail/mail/structure.h>
#include <cmail/proto/message.h>
#include <cmail/status.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cmail::store {

// System flags (RFC 9051 2.3.2) as bits of mailbox.mail_flags.
enum MessageFlag : std::uint32_t {
  kFlagSeen = 1u << 0,
  kFlagAnswered = 1u << 1,
  kFlagFlagged = 1u << 2,
  kFlagDeleted = 1u << 3,
  kFlagDraft = 1u << 4,
};

struct Folder {
  std::int64_t id = 0;
  std::string user;
  std::string name;
  std::uint32_t uidvalidity = 0;
  std::uint32_t uidnext = 1;
  std::uint64_t highest_modseq = 1;
  bool subscribed = true;
  std::string special_use;  // RFC 6154 attribute, e.g. "\\Sent"; empty when none
};

// The file next to a database that changes after every commit changing mail:
// "<db_path>-notify", 8 octets at offset 0, a little-endian counter (docs/store.md).
CMAIL_EXPORT std::string notify_path(std::string_view db_path);

// What append() stored.
struct Appended {
  std::uint32_t uidvalidity = 0;
  std::uint32_t uid = 0;
  std::uint64_t modseq = 0;
};

// What copy() and move() stored (RFC 4315 COPYUID): the target's UIDVALIDITY and, in ascending
// order of the source UIDs (those that exist, each once), each source UID with its new UID.
struct Copied {
  std::uint32_t uidvalidity = 0;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> uids;  // {source uid, new uid}
};

enum class FlagOp { Add, Remove, Replace };

struct FlagChange {
  std::uint32_t uid = 0;
  std::uint64_t modseq = 0;
  std::uint32_t flags = 0;
  std::string keywords;  // space separated
};

// What update_flags() did: the messages whose flags changed (a new modseq each), and the UIDs
// UNCHANGEDSINCE refused (RFC 7162 3.1.3: modified since; nothing changed for them).
struct FlagUpdate {
  std::vector<FlagChange> changed;
  std::vector<std::uint32_t> modified;
};

// Where a message row lives: the master database (database empty) or a user database.
struct MessageRef {
  std::string database;  // "" = master, else users.user_database path
  std::int64_t id = 0;   // mailbox.mail_id within that database
  bool operator==(const MessageRef&) const = default;
};

struct MessageInfo {
  MessageRef ref;
  std::string user;
  std::int64_t folder = 0;
  std::uint32_t uid = 0;
  std::uint64_t modseq = 0;
  std::uint32_t flags = 0;
  std::string keywords;  // space separated
  std::int64_t internal_date = 0;  // Unix time
  std::int64_t size = 0;           // octets, as stored
  // Octets with CRLF line ends and a final CRLF (proto::wire_size, cmail/proto/message.h): what
  // POP3 reports; -1 when the row does not record it.
  std::int64_t wire_size = -1;
  std::optional<std::string> ident;  // mail_ident
  // The POP3 unique-id the original cmail-popd showed (mail_uidl, set for rows stored before
  // schema version 11); nullopt for newer mail.
  std::optional<std::string> legacy_uidl;
  std::string envelope_from;
  std::string envelope_to;
};

// What changed in a folder since a modseq (RFC 7162 3.1.4 CHANGEDSINCE, RFC 7162 3.2.10
// VANISHED): the folder's state now, the messages with a greater modseq (UID order), and the
// UIDs expunged with a greater modseq (ascending).
struct Changes {
  Folder folder;
  std::vector<MessageInfo> messages;
  std::vector<std::uint32_t> expunged;
};

class CMAIL_EXPORT Mailboxes {
 public:
  virtual ~Mailboxes() = default;

  // The folder, created (with a fresh UIDVALIDITY) if missing. NotFound for an unknown user.
  virtual Result<Folder> ensure_folder(std::string_view user, std::string_view name) = 0;
  virtual Result<std::optional<Folder>> find_folder(std::string_view user,
                                                    std::string_view name) = 0;
  virtual Result<std::vector<Folder>> list_folders(std::string_view user) = 0;

  // The messages of a folder in UID order, from the master and the user's database. Rows that
  // other programs inserted with only cmail's version-9 columns get their INBOX folder, UID
  // and sizes first, in one write transaction (docs/store.md#rows-written-by-other-programs);
  // when there are none, that costs one indexed read. A user database that cannot be read is
  // an IoError (never silently an empty folder).
  virtual Result<std::vector<MessageInfo>> list_messages(std::string_view user,
                                                         std::string_view folder = "INBOX") = 0;
  // The same for the UIDs first_uid..last_uid (inclusive) only, through the folder's UID index:
  // what a FETCH batch reads, without listing the folder.
  virtual Result<std::vector<MessageInfo>> list_messages(std::string_view user, std::string_view folder,
                                                         std::uint32_t first_uid, std::uint32_t last_uid) = 0;
  virtual Result<std::string> read_message(const MessageRef& ref) = 0;
  // The octets of several messages, in the order of `refs`, in one read transaction per
  // database. NotFound when one of them is gone.
  virtual Result<std::vector<std::string>> read_messages(const std::vector<MessageRef>& refs) = 0;
  // Pieces of several messages: for refs[i], the octets of each (offset, length) of ranges[i]
  // cut at the end of the message, and the message's size; only those octets are read
  // (incremental blob I/O), in one read transaction per database. NotFound when one is gone.
  using OctetRanges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  struct Pieces {
    std::uint64_t size = 0;                                      // of the whole message
    std::vector<std::pair<std::uint64_t, std::string>> pieces;  // (offset, octets), one per range
  };
  virtual Result<std::vector<Pieces>> read_message_ranges(const std::vector<MessageRef>& refs,
                                                          const std::vector<OctetRanges>& ranges) = 0;
  // The message read in chunks as it is consumed (a large one is never held whole), on a
  // connection of its own that keeps one snapshot until the Source is destroyed. Opening it
  // blocks (a file open); each read() is a short blocking read of database pages.
  virtual Result<std::unique_ptr<proto::Source>> open_message(const MessageRef& ref) = 0;

  // Replaces flags and keywords of one message; bumps its modseq and the folder's highest
  // modseq. Returns the new modseq. mail_read follows the \Seen bit.
  virtual Result<std::uint64_t> set_flags(const MessageRef& ref, std::uint32_t flags,
                                          std::string_view keywords) = 0;
  // Deletes the messages in one transaction and logs their UIDs as expunged.
  virtual Status expunge(std::string_view user, const std::vector<MessageRef>& refs) = 0;

  // --- IMAP (RFC 9051). Folder names are as stored ("/" is the hierarchy delimiter); "INBOX"
  // is matched in any case. Every write below is one transaction.

  // A new folder (RFC 9051 6.3.4), not subscribed, with `special_use` (RFC 6154) if given and
  // a UIDVALIDITY never handed out before (RFC 9051 2.3.1.1). AlreadyExists when it exists,
  // NotFound for an unknown user, InvalidArgument for an empty name.
  virtual Result<Folder> create_folder(std::string_view user, std::string_view name,
                                       std::string_view special_use = "") = 0;
  // Deletes a folder and its messages (RFC 9051 6.3.5), in the master and the user database.
  // Its children and its subscription stay. InvalidArgument for INBOX, NotFound when missing.
  virtual Status delete_folder(std::string_view user, std::string_view name) = 0;
  // Renames a folder and its children ("from/...") keeping UIDs and UIDVALIDITY (RFC 9051
  // 6.3.6). Renaming INBOX moves its messages into a new folder `to` (new UIDs there; they are
  // logged as expunged from INBOX) and leaves INBOX empty. AlreadyExists when `to` (or a child's
  // new name) exists, NotFound when `from` does not. Subscriptions are names and stay.
  virtual Status rename_folder(std::string_view user, std::string_view from, std::string_view to) = 0;
  // Adds or removes a name from the user's subscriptions (RFC 9051 6.3.7, 6.3.8); the name need
  // not exist as a folder. NotFound for an unknown user.
  virtual Status set_subscribed(std::string_view user, std::string_view name, bool subscribed) = 0;
  // The subscribed names, sorted.
  virtual Result<std::vector<std::string>> subscriptions(std::string_view user) = 0;
  // Creates (subscribed) whichever of Sent, Drafts, Trash, Junk, Archive with \Sent, \Drafts,
  // \Trash, \Junk, \Archive (RFC 6154 2) the user lacks, a folder with that special use
  // counting as present. One read when they all exist.
  virtual Status ensure_special_folders(std::string_view user) = 0;
  // One folder (one row read). NotFound when missing.
  virtual Result<Folder> folder_state(std::string_view user, std::string_view name) = 0;

  // Stores a message in an existing folder (RFC 9051 6.3.12) with its flags, keywords (space
  // separated) and internal date (Unix time; 0 = now), where delivery would store it (the
  // user database, if any and usable, else the master), its size, wire size and structure
  // counted as it is read; the folder's UIDNEXT and HIGHESTMODSEQ advance. A large message is
  // read a chunk at a time into a spool file, never held whole. NotFound when the folder does
  // not exist (TRYCREATE), InvalidArgument over 1,000,000,000 octets.
  virtual Result<Appended> append(std::string_view user, std::string_view folder, proto::Source& message,
                                  std::uint32_t flags = 0, std::string_view keywords = "",
                                  std::int64_t internal_date = 0) = 0;
  virtual Result<Appended> append(std::string_view user, std::string_view folder, std::string_view message,
                                  std::uint32_t flags = 0, std::string_view keywords = "",
                                  std::int64_t internal_date = 0) = 0;
  // Copies messages (RFC 9051 6.4.7) with flags, keywords, internal date and structure into
  // `to`, in ascending order of their UIDs (new UIDs ascending with them), each copy in the
  // database of its original. UIDs that do not exist are skipped. NotFound when either folder
  // is missing; IoError when the user database cannot be used.
  virtual Result<Copied> copy(std::string_view user, std::string_view from,
                              const std::vector<std::uint32_t>& uids, std::string_view to) = 0;
  // copy() and the expunge of the originals, logged with their modseq, in one transaction
  // (RFC 6851 3.3).
  virtual Result<Copied> move(std::string_view user, std::string_view from,
                              const std::vector<std::uint32_t>& uids, std::string_view to) = 0;
  // STORE (RFC 9051 6.4.6): adds, removes or replaces flags and keywords of messages. A message
  // whose flags and keywords end up as they were keeps its modseq; each other gets a new one
  // (RFC 7162 3.1.3). With `unchanged_since`, a message whose modseq is greater is left alone
  // and listed in `modified`. mail_read follows \Seen. Missing UIDs are skipped.
  virtual Result<FlagUpdate> update_flags(std::string_view user, std::string_view folder,
                                          const std::vector<std::uint32_t>& uids, FlagOp op,
                                          std::uint32_t flags, std::vector<std::string> keywords,
                                          std::optional<std::uint64_t> unchanged_since = std::nullopt) = 0;
  // Deletes the messages of a folder with these UIDs and logs them as expunged (RFC 9051
  // 6.4.3 EXPUNGE, UID EXPUNGE of RFC 4315). Returns the UIDs removed, ascending.
  virtual Result<std::vector<std::uint32_t>> expunge_uids(std::string_view user, std::string_view folder,
                                                          const std::vector<std::uint32_t>& uids) = 0;
  // What changed since `modseq` (see Changes): indexed reads, no scan of the folder.
  virtual Result<Changes> changes_since(std::string_view user, std::string_view folder, std::uint64_t modseq) = 0;
  // The stored structure of a message; for a row stored without one (before schema 13, or by
  // another program) it is parsed from the message read in chunks and written back.
  virtual Result<mail::Part> read_structure(const MessageRef& ref) = 0;
  // The same for several messages, in the order of `refs`: the stored ones read in one read
  // transaction per database, the others as read_structure() does. NotFound when one is gone.
  virtual Result<std::vector<mail::Part>> read_structures(const std::vector<MessageRef>& refs) = 0;
};

}  // namespace cmail::store
