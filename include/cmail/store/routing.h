// cmail/store/routing.h: cmail's address routing (docs/compatibility.md#routing) as plain
// functions over Directory lookups, with no protocol state: who may use a reverse path, what
// happens to each recipient, and what a message becomes at end of data.
//
// Replies follow RFC 5321/3463; where a router carries a text (reject's argument) that text is
// the reply text. Differences from the original, each deliberate:
//  - a misconfigured address (store/redirect/handoff without argument, store to a user that
//    does not exist, an unknown router name) is refused at RCPT with 451 4.3.5, never
//    accepted and silently dropped or failed after DATA
//    (docs/compatibility.md#routing-inbound-routers);
//  - local recipients always follow their inbound router, also for senders whose outbound
//    router is drop or handoff: those routers decide non-local recipients only
//    (docs/compatibility.md#routing-local-recipients-of-drop-and-handoff-senders);
//  - an unauthenticated reverse path whose address is routed to `reject` is refused
//    (docs/compatibility.md#routing-senders-routed-to-reject);
//  - (from-domain) never includes the '@' (docs/compatibility.md#routing-redirect-placeholders).
//
// Thread-safety: pure functions; Directory is thread-safe.
#pragma once

#include <cmail/export.h>
#include <cmail/smtp/syntax.h>
#include <cmail/store/directory.h>
#include <cmail/store/store.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cmail::store::routing {

// The sender of one transaction, as established at MAIL.
struct Sender {
  smtp::Path path;
  std::optional<std::string> user;  // authorized identity when authenticated
  std::string outbound_router;      // smtpd_router of that user ("" when unauthenticated)
  std::optional<std::string> outbound_route;
};

// What one accepted recipient becomes.
struct Recipient {
  enum class Kind { Store, Redirect, Handoff, Drop, Outbound };
  Kind kind = Kind::Drop;
  smtp::Path path;                    // as received
  std::string target;                 // Store: user; Redirect: new recipient; Handoff/Outbound: remote ("" = MX)
  smtp::RcptParams params;
};

// Checks MAIL FROM. Returns the Sender or the reply refusing it.
CMAIL_EXPORT Result<std::variant<Sender, smtp::Reply>> check_sender(
    DirectoryLookups& dir, const std::optional<std::string>& authorized_user, const smtp::Path& from);

// Decides one RCPT TO. Returns the plan or the reply refusing the recipient.
CMAIL_EXPORT Result<std::variant<Recipient, smtp::Reply>> route_recipient(
    DirectoryLookups& dir, const Sender& sender, const smtp::Path& to, const smtp::RcptParams& params);

// (to-local) (to-domain) (from-local) (from-domain), every occurrence
// (docs/compatibility.md#routing-redirect-placeholders).
CMAIL_EXPORT std::string expand_redirect(std::string_view tmpl, const smtp::Path& from,
                                         const smtp::Path& to);

// Fills delivery.local and delivery.queued from the accepted recipients (drops add nothing).
CMAIL_EXPORT void plan_delivery(const Sender& sender, const std::vector<Recipient>& recipients,
                                Delivery& delivery);

// Where a report (a bounce or a delivery status notification, sent with the null sender) to `to`
// goes: a local address follows its inbound router as mail from <> would (cmail's dispatchd sent
// these out through DNS even for local senders, docs/compatibility.md#dispatchd-bounces); any
// other address is queued for MX delivery with NOTIFY=NEVER. Adds to `report` (its envelope_from
// stays as it is). Returns false when the local address's routing refuses mail.
CMAIL_EXPORT Result<bool> plan_report(DirectoryLookups& dir, const std::string& to, Delivery& report);

}  // namespace cmail::store::routing
