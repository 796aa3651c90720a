// cmail/store/spool.h: a message body on its way into the store, in a file instead of memory.
//
// An SMTP session appends a large message to a Spool as it arrives (so that a 30 MB message
// costs a few hundred KiB of memory, not 30 MB); Store::deliver() then copies it into every
// row it writes in chunks (SQLite incremental blob I/O), and the Spool goes away with the
// Delivery. The MIME structure of what is appended is parsed as it arrives
// (mail::StructureParser, cmail/mail/structure.h), so that storing the message needs no second
// read of it to fill mailbox.mail_structure. The file is created unlinked (O_TMPFILE, else mkstemp + unlink) in the database's
// directory, so nothing is left behind by a crash and no other process can open it. It needs
// no fsync: the store's commit makes the message durable, and the 250 waits for that commit.
//
// Thread-safety: none; a Spool is written by one thread, then handed over whole (read() may be
// called from several threads once nobody appends). Ownership: the Spool owns its descriptor.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/structure.h>
#include <cmail/proto/message.h>
#include <cmail/status.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cmail::store {

class CMAIL_EXPORT Spool {
 public:
  // An empty spool file in `directory`. IoError when no file can be created there.
  static Result<std::unique_ptr<Spool>> create(const std::string& directory);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Appends `bytes` at the end. IoError (disk full, ...) leaves the spool unusable.
  Status append(std::string_view bytes);
  // Reads up to `n` octets at `offset` into `out` (replacing its contents); short only at the end.
  Status read(std::uint64_t offset, std::size_t n, std::string& out) const;

  std::uint64_t size() const { return size_; }
  // proto::wire_size() of everything appended, as if it came after a line end.
  const proto::WireSize& wire_size() const { return wire_; }
  // The part tree of everything appended so far, as mail::parse_structure() of it would give.
  mail::Part structure() const;

 private:
  explicit Spool(int fd) : fd_(fd) {}
  int fd_;
  std::uint64_t size_ = 0;
  proto::WireSize wire_;
  mail::StructureParser parser_;
  bool failed_ = false;
};

}  // namespace cmail::store
