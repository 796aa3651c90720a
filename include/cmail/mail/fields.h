// cmail/mail/fields.h: values for the header fields and identifiers cmail writes into mail.
//
// Thread-safety: pure functions (new_queue_id reads the system RNG, which is thread-safe).
#pragma once

#include <cmail/export.h>

#include <cstdint>
#include <string>

namespace cmail::mail {

// An unpredictable queue id: 16 characters of [0-9A-Za-z] from the system RNG.
CMAIL_EXPORT std::string new_queue_id();
// An RFC 5322 date-time (section 3.3) for `unix_time` in UTC ("Tue, 24 Nov 2026 10:03:46 +0000").
CMAIL_EXPORT std::string rfc5322_date(std::int64_t unix_time);

}  // namespace cmail::mail
