// cmail-admin address (cmail-admin-address), as the original tool
// (docs/compatibility.md#admin-tools-address).
#include "commands.h"

#include <charconv>
#include <cstdio>

namespace cmail::admin {

void usage_address() {
  std::printf(
      "cmail-admin-address - Manage address expressions and their inbound routers\n"
      "Usage: cmail-admin-address [-d DBPATH] [-v N] [--no-upgrade] COMMAND [ARGS]\n"
      "  add EXPRESSION ROUTER [ARGUMENT [ORDER]]   routers: store redirect handoff reject drop\n"
      "  update ORDER ROUTER [ARGUMENT]\n"
      "  delete ORDER\n"
      "  swap FIRST SECOND          exchange the orders of two expressions\n"
      "  test PATH                  the expressions matching PATH, the one used first\n"
      "  list [PATTERN]             expressions matching the LIKE pattern\n");
}

namespace {

std::optional<std::int64_t> number(const std::string& s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

void print_addresses(const std::vector<store::Address>& rows) {
  std::printf("%5s | %30s | %10s | %20s\n", "Order", "Expression", "Router", "Argument");
  std::printf("------+--------------------------------+------------+---------------------\n");
  for (const store::Address& a : rows)
    std::printf("%5lld | %30s | %10s | %20s\n", static_cast<long long>(a.order), a.expression.c_str(),
                a.router.c_str(), a.route.value_or("").c_str());
}

}  // namespace

int run_address(Context& ctx) {
  const auto& a = ctx.args;
  const std::string& cmd = a[0];
  auto opt_arg = [&](std::size_t i) { return a.size() > i ? std::optional<std::string_view>(a[i]) : std::nullopt; };
  auto order_of = [&](std::size_t i, std::int64_t& out) -> bool {
    auto n = number(a[i]);
    if (!n) return false;
    out = *n;
    return true;
  };
  const bool known = cmd == "add" || cmd == "update" || cmd == "delete" || cmd == "swap" || cmd == "test" || cmd == "list";
  if (!known) {
    ctx.fail(kExitUsage, "Unknown command " + cmd);
    usage_address();
    return kExitUsage;
  }
  // Argument counts first, so that nothing is opened for a malformed command.
  if (cmd == "add" && a.size() > 5) return ctx.fail(kExitArgs, "Too many arguments");
  if (cmd == "add" && a.size() < 3) return ctx.fail(kExitArgs, "add needs an expression and a router");
  if (cmd == "update" && (a.size() < 3 || a.size() > 4)) return ctx.fail(kExitArgs, "usage: update ORDER ROUTER [ARGUMENT]");
  if ((cmd == "delete" || cmd == "test") && a.size() != 2) return ctx.fail(kExitArgs, "usage: " + cmd + (cmd == "test" ? " PATH" : " ORDER"));
  if (cmd == "swap" && a.size() != 3) return ctx.fail(kExitArgs, "usage: swap FIRST SECOND");
  if (cmd == "list" && a.size() > 2) return ctx.fail(kExitArgs, "Too many arguments");
  std::int64_t order = 0, second = 0;
  if ((cmd == "update" || cmd == "delete" || cmd == "swap") && !order_of(1, order))
    return ctx.fail(kExitInvalid, "'" + a[1] + "' is not an address order (a number)");
  if (cmd == "swap" && !order_of(2, second)) return ctx.fail(kExitInvalid, "'" + a[2] + "' is not an address order (a number)");
  std::optional<std::int64_t> given;
  if (cmd == "add" && a.size() == 5) {
    if (!order_of(4, order)) return ctx.fail(kExitInvalid, "'" + a[4] + "' is not an address order (a number)");
    given = order;
  }

  int code = 0;
  auto store = ctx.open(cmd == "test" || cmd == "list", code);
  if (!store) return code;
  store::Directory& d = store->directory();
  Status st;
  if (cmd == "add") {
    auto r = d.add_address(a[1], a[2], opt_arg(3), given);
    st = r.error();
  } else if (cmd == "update") {
    st = d.update_address(order, a[2], opt_arg(3));
  } else if (cmd == "delete") {
    st = d.delete_address(order);
    if (st.is_not_found()) return ctx.fail(kExitNotFound, "No such address, no modifications commited");
  } else if (cmd == "swap") {
    st = d.swap_addresses(order, second);
    // First not found: 20 (docs/compatibility.md#admin-tools-address).
    if (st.is_not_found()) return ctx.fail(20, st.message());
  } else {
    auto rows = cmd == "test" ? d.match_addresses(a[1]) : d.list_addresses(a.size() > 1 ? a[1] : "%");
    if (!rows) return ctx.fail(rows.error());
    print_addresses(*rows);
    return kExitOk;
  }
  return st.ok() ? kExitOk : ctx.fail(st);
}

}  // namespace cmail::admin
