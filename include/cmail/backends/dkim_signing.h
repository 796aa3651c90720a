// cmail/backends/dkim_signing.h: DKIM signing (RFC 6376 5) with the keys of the master
// database's dkim_keys table, for what the server sends in its users' and its own name:
// authenticated submissions (StoreSmtpSession) and the reports the dispatcher makes (bounces).
//
// Which keys: those of the message's From domain, else of its nearest parent domain that has
// some (a signature by example.org is aligned with From: news.example.org under DMARC's relaxed
// mode, RFC 7489 3.1.1); every one of them signs (key rotation, or RSA beside Ed25519).
//
// Thread-safety: plain functions; RSA signing costs a millisecond or two of CPU per key, so
// callers on an event loop run sign_with() on a worker. Private keys never reach a log line.
#pragma once

#include <cmail/export.h>
#include <cmail/mail/dkim.h>
#include <cmail/store/directory.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::backends {

// The keys for mail from `domain` (see above); empty when neither it nor a parent has any, or
// the lookup fails.
CMAIL_EXPORT std::vector<store::DkimKey> signing_keys(store::DirectoryLookups& dir, std::string_view domain);

// The DKIM-Signature fields of a message `signer` has read (finish() called), one per key, to
// prepend in this order. A key that cannot sign adds "<domain>/<selector>: why" to `errors`.
CMAIL_EXPORT std::string sign_with(const std::vector<store::DkimKey>& keys, const mail::dkim::Signer& signer,
                                   std::int64_t now, std::string& errors);

// The fields for a whole message: read, its From domain's keys looked up, signed; "" when it
// has no keys (or no From).
CMAIL_EXPORT std::string dkim_fields(store::DirectoryLookups& dir, std::string_view message, std::int64_t now,
                                     std::string& errors);

}  // namespace cmail::backends
