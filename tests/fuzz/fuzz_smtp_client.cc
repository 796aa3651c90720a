// libFuzzer target: the SMTP client engine against arbitrary server bytes. The first byte picks
// options; the rest is what the "server" says, fed in pieces. Invariants: no crash, no
// credentials before TLS, nothing sent after Close, events only as the header promises.
#include <cmail/smtp/client.h>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using namespace cmail;
  smtp::ClientOptions o;
  o.chunking = data[0] & 1;
  o.tls = (data[0] & 2) ? smtp::TlsPolicy::Required : smtp::TlsPolicy::Opportunistic;
  o.auth = sasl::Credentials{"", "user", "s3cret"};
  smtp::Client c(o);
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  bool closed = false;
  int sent = 0;
  while (!in.empty()) {
    std::size_t n = std::min<std::size_t>(in.size(), 1 + (static_cast<unsigned char>(in[0]) % 23));
    c.receive(in.substr(0, n));
    in.remove_prefix(n);
    std::string out(c.pending_output());
    c.consume_output(out.size());
    if (closed && !out.empty()) std::abort();  // nothing after Close
    const bool secret = out.find("AUTH") != std::string::npos ||
                        out.find(sasl::base64_encode("s3cret")) != std::string::npos ||
                        out.find(sasl::base64_encode(sasl::plain_message("", "user", "s3cret"))) != std::string::npos;
    if (secret && !c.tls()) std::abort();  // credentials only inside TLS
    while (auto e = c.next_event()) {
      if (std::holds_alternative<proto::StartTls>(*e)) c.tls_established({"TLSv1.2", "FUZZ", 128});
      else closed = true;
    }
    while (auto e = c.next_client_event()) {
      if (std::holds_alternative<smtp::client_event::Ready>(*e) && sent < 3) {
        smtp::Envelope env;
        env.from = *smtp::parse_path("<a@example.test>", true);
        env.recipients.push_back({*smtp::parse_path("<b@example.test>", false), {}});
        env.recipients.push_back({*smtp::parse_path("<c@example.test>", false), {}});
        if (!c.send_mail(env, sent == 1 ? std::string("caf\xc3\xa9\r\n") : std::string(".x\r\nbody\r\n")).ok()) c.quit();
        ++sent;
      }
    }
  }
  c.receive_eof();
  return 0;
}
