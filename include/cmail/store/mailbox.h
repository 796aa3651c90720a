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
// Thread-safety: every method may be called from any thread; writes go through the Store's
// writer and return after the commit. Obtain it from Store::mailboxes().
#pragma once

#include <cmail/export.h>
#include <cmail/proto/message.h>
#include <cmail/status.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
  virtual Result<std::string> read_message(const MessageRef& ref) = 0;
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
};

}  // namespace cmail::store
