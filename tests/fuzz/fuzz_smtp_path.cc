// libFuzzer target: the SMTP path and parameter parser (MAIL FROM / RCPT TO arguments), strict
// and liberal. Invariants: whatever parses formats back (to_wire) to something that parses to
// the same path; what the strict mode takes, the liberal mode takes with the same meaning.
#include <cmail/smtp/syntax.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using namespace cmail::smtp;

const SyntaxOptions kStrict{};
const SyntaxOptions kLiberal{.utf8 = true, .strict = false};

void check_mail(std::string_view in, const SyntaxOptions& o) {
  auto m = parse_mail_from(in, o);
  auto* mc = std::get_if<MailCommand>(&m);
  if (!mc) return;
  auto again = parse_path("<" + mc->path.to_wire() + ">", true);
  // The strict codec takes every path back but a liberal local part alone (no domain).
  if (again ? !(*again == mc->path) : (o.strict || !mc->path.domain.empty())) std::abort();
  auto re = parse_mail_from("<" + mc->path.to_wire() + ">" + format_mail_params(mc->params), o);
  auto* rc = std::get_if<MailCommand>(&re);
  if (!rc || !(rc->path == mc->path) || !(rc->params == mc->params)) std::abort();
}

void check_rcpt(std::string_view in, const SyntaxOptions& o) {
  auto r = parse_rcpt_to(in, o);
  auto* rc = std::get_if<RcptCommand>(&r);
  if (!rc) return;
  auto re = parse_rcpt_to("<" + rc->path.to_wire() + ">" + format_rcpt_params(rc->params), o);
  auto* again = std::get_if<RcptCommand>(&re);
  if (!again || !(again->path == rc->path) || !(again->params == rc->params)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check_mail(in, kStrict);
  check_mail(in, kLiberal);
  check_rcpt(in, kStrict);
  check_rcpt(in, kLiberal);
  // Strict is a subset of liberal, with one meaning.
  auto s = parse_rcpt_to(in, kStrict);
  if (auto* sc = std::get_if<RcptCommand>(&s)) {
    auto l = parse_rcpt_to(in, kLiberal);
    auto* lc = std::get_if<RcptCommand>(&l);
    if (!lc || !(lc->path == sc->path) || !(lc->params == sc->params)) std::abort();
  }
  auto sm = parse_mail_from(in, kStrict);
  if (auto* sc = std::get_if<MailCommand>(&sm)) {
    auto l = parse_mail_from(in, kLiberal);
    auto* lc = std::get_if<MailCommand>(&l);
    if (!lc || !(lc->path == sc->path) || !(lc->params == sc->params)) std::abort();
  }
  (void)valid_domain(in);
  (void)xtext_decode(in);
  return 0;
}
