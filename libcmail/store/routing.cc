// Address routing (docs/compatibility.md#routing), with the fixes listed in cmail/store/routing.h.
#include <cmail/store/routing.h>

namespace cmail::store::routing {

namespace {

smtp::Reply misconfigured(const std::string& what) {
  // RFC 3463 4.3.5: system incorrectly configured; temporary so that nothing is lost while an
  // administrator fixes the table.
  return smtp::reply(451, {4, 3, 5}, "Routing for " + what + " is misconfigured; try again later");
}

bool user_exists(DirectoryLookups& dir, const std::string& name, Status& st) {
  auto u = dir.find_user(name);
  if (!u) {
    st = u.error();
    return false;
  }
  return u->has_value();
}

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  for (std::size_t pos = 0; (pos = s.find(what, pos)) != std::string::npos; pos += with.size())
    s.replace(pos, what.size(), with);
}

}  // namespace

std::string expand_redirect(std::string_view tmpl, const smtp::Path& from, const smtp::Path& to) {
  std::string out(tmpl);
  replace_all(out, "(to-local)", to.local);
  replace_all(out, "(to-domain)", to.domain);
  replace_all(out, "(from-local)", from.local);
  replace_all(out, "(from-domain)", from.domain);
  return out;
}

Result<std::variant<Sender, smtp::Reply>> check_sender(DirectoryLookups& dir,
                                                       const std::optional<std::string>& user,
                                                       const smtp::Path& from) {
  Sender s;
  s.path = from;
  s.user = user;
  auto matches = dir.match_addresses(from.address());
  if (!matches) return matches.error();
  if (!user) {
    // Unauthenticated: anyone may use any reverse path, except one routed to reject.
    if (!matches->empty() && (*matches)[0].router == "reject")
      return std::variant<Sender, smtp::Reply>(smtp::reply(
          550, {5, 7, 1}, (*matches)[0].route.value_or("User does not accept mail")));
    return std::variant<Sender, smtp::Reply>(s);
  }
  auto entry = dir.find_smtpd(*user);
  if (!entry) return entry.error();
  const smtp::Reply not_allowed = smtp::reply(550, {5, 7, 1}, "User not allowed to use this path");
  if (!entry->has_value()) return std::variant<Sender, smtp::Reply>(not_allowed);
  s.outbound_router = (*entry)->router;
  s.outbound_route = (*entry)->route;
  if (s.outbound_router == "reject")
    return std::variant<Sender, smtp::Reply>(
        smtp::reply(550, {5, 7, 1}, s.outbound_route.value_or("User not allowed to use this path")));
  if (s.outbound_router == "defined") {
    // The reverse path must match a store row that points to this user (any such row, not
    // only the winning one); "<>" does not (docs/compatibility.md#routing-outbound-routers).
    bool own = false;
    if (!from.null())
      for (const Address& a : *matches)
        if (a.router == "store" && a.route == *user) own = true;
    if (!own) return std::variant<Sender, smtp::Reply>(not_allowed);
  } else if (!is_outbound_router(s.outbound_router)) {
    return std::variant<Sender, smtp::Reply>(misconfigured("sender " + *user));
  }
  return std::variant<Sender, smtp::Reply>(s);
}

Result<std::variant<Recipient, smtp::Reply>> route_recipient(DirectoryLookups& dir, const Sender& sender,
                                                             const smtp::Path& to,
                                                             const smtp::RcptParams& params) {
  using R = std::variant<Recipient, smtp::Reply>;
  Recipient r;
  r.path = to;
  r.params = params;
  auto row = dir.route_address(to.address());
  if (!row) return row.error();
  if (row->has_value()) {
    const Address& a = **row;
    const std::string what = "<" + to.address() + ">";
    if (a.router == "reject") return R(smtp::reply(550, {5, 7, 1}, a.route.value_or("User does not accept mail")));
    if (a.router == "drop") {
      r.kind = Recipient::Kind::Drop;
      return R(r);
    }
    if (!a.route || a.route->empty()) return R(misconfigured(what));
    if (a.router == "store") {
      Status st;
      if (!user_exists(dir, *a.route, st)) {
        if (!st.ok()) return st;
        return R(misconfigured(what));
      }
      r.kind = Recipient::Kind::Store;
      r.target = *a.route;
      return R(r);
    }
    if (a.router == "redirect") {
      r.kind = Recipient::Kind::Redirect;
      r.target = expand_redirect(*a.route, sender.path, to);
      // Queued for MX delivery, so it needs a domain: strict syntax (parse_path).
      auto target = smtp::parse_path("<" + r.target + ">", false);
      if (!target || target->domain.empty()) return R(misconfigured(what));
      return R(r);
    }
    if (a.router == "handoff") {
      r.kind = Recipient::Kind::Handoff;
      r.target = *a.route;
      return R(r);
    }
    // An unknown router name (docs/compatibility.md#routing-unknown-routers).
    return R(misconfigured(what));
  }
  // Not local. Only authenticated senders may relay (no open relay in any form: the domain
  // part decides, and it is the text after the last unquoted '@').
  if (to.domain.empty()) return R(smtp::reply(550, {5, 1, 3}, "Non-local paths need a domain part"));
  if (!sender.user) return R(smtp::reply(550, {5, 7, 1}, "Relaying denied"));
  const std::string& router = sender.outbound_router;
  if (router == "drop" || (router == "handoff" && (!sender.outbound_route || sender.outbound_route->empty()))) {
    // A handoff without a route behaves like drop (docs/compatibility.md#routing-outbound-routers).
    r.kind = Recipient::Kind::Drop;
    return R(r);
  }
  r.kind = Recipient::Kind::Outbound;
  r.target = router == "handoff" ? *sender.outbound_route : "";
  return R(r);
}

void plan_delivery(const Sender& sender, const std::vector<Recipient>& recipients, Delivery& d) {
  // Envelope addresses are stored in their wire form (RFC 5321 4.1.2): a local part that needs
  // quotes keeps them, so "a@b"@local.test is not stored, nor relayed, as a@b@local.test.
  d.envelope_from = sender.path.to_wire();
  for (const Recipient& r : recipients) {
    DsnRecipient dsn{r.params.notify, r.params.orcpt};
    switch (r.kind) {
      case Recipient::Kind::Store:
        d.local.push_back({r.target, r.path.to_wire()});
        break;
      case Recipient::Kind::Redirect:
        d.queued.push_back({std::nullopt, r.target, dsn});
        break;
      case Recipient::Kind::Handoff:
        d.queued.push_back({r.target, r.path.to_wire(), dsn});
        break;
      case Recipient::Kind::Outbound:
        d.queued.push_back({r.target.empty() ? std::nullopt : std::optional<std::string>(r.target),
                            r.path.to_wire(), dsn});
        break;
      case Recipient::Kind::Drop:
        break;
    }
  }
}

Result<bool> plan_report(DirectoryLookups& dir, const std::string& to, Delivery& report) {
  auto local = dir.route_address(to);
  if (!local) return local.error();
  if (!*local) {
    QueuedRecipient q;
    q.envelope_to = to;
    q.dsn.notify = "NEVER";  // RFC 3461 5.2: no report about a report
    report.queued.push_back(q);
    return true;
  }
  Sender null_sender;  // the null reverse path, unauthenticated
  auto r = route_recipient(dir, null_sender, smtp::Path::from_address(to), {});
  if (!r) return r.error();
  if (!std::holds_alternative<Recipient>(*r)) return false;
  auto from = report.envelope_from;
  plan_delivery(null_sender, {std::get<Recipient>(*r)}, report);
  report.envelope_from = from;
  return true;
}

}  // namespace cmail::store::routing
