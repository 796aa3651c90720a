// libFuzzer target: the SMTP path and parameter parser (MAIL FROM / RCPT TO arguments).
// Invariant: whatever parses formats back (to_wire) to something that parses to the same path.
#include <cmail/smtp/syntax.h>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto m = cmail::smtp::parse_mail_from(in);
  if (auto* mc = std::get_if<cmail::smtp::MailCommand>(&m)) {
    auto again = cmail::smtp::parse_path("<" + mc->path.to_wire() + ">", true);
    if (!again || !(*again == mc->path)) std::abort();
    auto params = cmail::smtp::format_mail_params(mc->params);
    auto re = cmail::smtp::parse_mail_from("<" + mc->path.to_wire() + ">" + params);
    if (!std::holds_alternative<cmail::smtp::MailCommand>(re)) std::abort();
    if (!(std::get<cmail::smtp::MailCommand>(re).params == mc->params)) std::abort();
  }
  auto r = cmail::smtp::parse_rcpt_to(in);
  if (auto* rc = std::get_if<cmail::smtp::RcptCommand>(&r)) {
    auto re = cmail::smtp::parse_rcpt_to("<" + rc->path.to_wire() + ">" + cmail::smtp::format_rcpt_params(rc->params));
    if (!std::holds_alternative<cmail::smtp::RcptCommand>(re)) std::abort();
    if (!(std::get<cmail::smtp::RcptCommand>(re).params == rc->params)) std::abort();
  }
  (void)cmail::smtp::valid_domain(in);
  (void)cmail::smtp::xtext_decode(in);
  return 0;
}
