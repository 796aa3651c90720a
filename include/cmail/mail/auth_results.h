// cmail/mail/auth_results.h: Authentication-Results header fields (RFC 8601) that claim to
// come from us, taken out of a message as it streams in.
//
// An MTA that adds Authentication-Results must make inert the ones already in a message that
// carry its own authserv-id (RFC 8601 5): else a sender could forge "spf=pass" under our name
// and a mail client would believe it. ForgedResultsFilter passes a message through (in any
// pieces) and drops, from its header section only, every Authentication-Results field whose
// authserv-id is ours (compared without regard to case). What it holds back at any time is
// one header field, at most kMaxField octets (a longer field is passed on unchanged).
//
// Ownership: a value. Thread-safety: one thread at a time.
#pragma once

#include <cmail/export.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace cmail::mail {

// RFC 8601 2.2: the authserv-id of an Authentication-Results value (the text before its first
// ";", comments and white space around it dropped); "" when there is none.
CMAIL_EXPORT std::string authserv_id(std::string_view value);

class CMAIL_EXPORT ForgedResultsFilter {
 public:
  static constexpr std::size_t kMaxField = 64 * 1024;
  explicit ForgedResultsFilter(std::string authserv_id) : id_(std::move(authserv_id)) {}
  // Appends what passes of `in` to `out`.
  void feed(std::string_view in, std::string& out);
  // The end of the message: what is held back goes (or is dropped) now.
  void finish(std::string& out);
  std::size_t dropped() const { return dropped_; }

 private:
  void settle_field(std::string& out);  // the held field is complete: keep or drop it
  void append(char c, std::string& out);

  std::string id_;
  bool in_body_ = false;
  bool line_start_ = true;   // the next octet starts a line
  bool cr_at_start_ = false; // the current line began with CR (the empty line, if LF follows)
  std::string field_;        // the header field held back (its lines so far)
  bool overflow_ = false;    // field_ grew past kMaxField: passed on as it comes
  std::size_t dropped_ = 0;
};

}  // namespace cmail::mail
