// cmail/imap/flags.h: the flags of a message as IMAP names them (RFC 9051 2.3.2): the system
// flags as bits, keywords by name, and the flag lists of the wire (STORE, APPEND, FLAGS
// responses). The bits have the values of the store's mail_flags column
// (cmail/store/mailbox.h), which is above this layer.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <cmail/export.h>
#include <cmail/imap/codec.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cmail::imap {

// The flags of a message (RFC 9051 2.3.2): system flags as bits, keywords by name (atoms, as
// the client wrote them; compared without regard to case).
enum SystemFlag : std::uint32_t {
  kSeen = 1u << 0,
  kAnswered = 1u << 1,
  kFlagged = 1u << 2,
  kDeleted = 1u << 3,
  kDraft = 1u << 4,
};
struct Flags {
  std::uint32_t system = 0;
  std::vector<std::string> keywords;
  bool operator==(const Flags&) const = default;
};
// "(\Seen \Deleted $Label)": system flags in the order of the bits, then the keywords.
CMAIL_EXPORT std::string encode_flags(const Flags& f);
// The same as a list of names: "\\Seen", "\\Deleted", "$Label".
CMAIL_EXPORT std::vector<std::string> flag_names(const Flags& f);
// A flag list (RFC 9051 9: flag-list, or a single flag for STORE): nullopt when an item is not
// a flag, or is "\Recent" or another system flag the server does not know (RFC 9051 2.3.2:
// clients may not set \Recent; unknown \-flags are refused), or "\*" (only servers send it).
CMAIL_EXPORT std::optional<Flags> parse_flags(const Value& v);

}  // namespace cmail::imap
