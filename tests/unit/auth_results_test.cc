// mail::ForgedResultsFilter and authserv_id (RFC 8601 2.2, 5), fed whole, byte by byte and in
// random splits.
#include "harness.h"

#include <cmail/mail/auth_results.h>

#include <doctest/doctest.h>

using namespace cmail;

namespace {

std::string filtered(std::string_view in, std::size_t* dropped = nullptr) {
  mail::ForgedResultsFilter f("mx.example.test");
  std::string out;
  switch (test::current_split()) {
    case test::Split::Whole:
      f.feed(in, out);
      break;
    case test::Split::Bytewise:
      for (char c : in) f.feed(std::string_view(&c, 1), out);
      break;
    case test::Split::Random:
      while (!in.empty()) {
        std::size_t n = std::min<std::size_t>(std::uniform_int_distribution<std::size_t>(1, 9)(test::test_rng()), in.size());
        f.feed(in.substr(0, n), out);
        in.remove_prefix(n);
      }
      break;
  }
  f.finish(out);
  if (dropped) *dropped = f.dropped();
  return out;
}

}  // namespace

TEST_CASE("auth results: the authserv-id of a value") {
  CHECK(mail::authserv_id(" MX.Example.test; spf=pass") == "mx.example.test");
  CHECK(mail::authserv_id(" (a comment (nested)) mx.example.test 1; none") == "mx.example.test");
  CHECK(mail::authserv_id("\r\n\tmx.example.test;spf=pass") == "mx.example.test");
  CHECK(mail::authserv_id(" ; spf=pass") == "");
}

TEST_CASE("auth results: fields that claim our authserv-id are dropped from the header only (RFC 8601 5)") {
  SPLIT_SUBCASES();
  const std::string msg =
      "Received: from x\r\n"
      "Authentication-Results: mx.example.test;\r\n"
      "\tspf=pass smtp.mailfrom=forged@example.org\r\n"
      "authentication-results : MX.EXAMPLE.TEST; dkim=pass\r\n"
      "Authentication-Results: other.example.net; spf=fail\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Authentication-Results: mx.example.test; this is body text\r\n";
  std::size_t dropped = 0;
  CHECK(filtered(msg, &dropped) ==
        "Received: from x\r\n"
        "Authentication-Results: other.example.net; spf=fail\r\n"
        "Subject: hi\r\n"
        "\r\n"
        "Authentication-Results: mx.example.test; this is body text\r\n");
  CHECK(dropped == 2);
  // Without a body, and ending inside a forged field.
  CHECK(filtered("Subject: x\r\nAuthentication-Results: mx.example.test; spf=pass") == "Subject: x\r\n");
  // Nothing to drop: the message as it was, to the octet.
  const std::string plain = "From: a@b\r\n\r\n\r\nbody\r\n\r\n";
  CHECK(filtered(plain) == plain);
  CHECK(filtered("") == "");
  CHECK(filtered("\r\nbody only\r\n") == "\r\nbody only\r\n");
  CHECK(filtered("X: a\rb\r\n\r\nc") == "X: a\rb\r\n\r\nc");
}

TEST_CASE("auth results: a field too long to hold passes unchanged") {
  const std::string big = "Authentication-Results: mx.example.test; " + std::string(mail::ForgedResultsFilter::kMaxField, 'x') + "\r\n";
  const std::string msg = big + "Subject: s\r\n\r\nbody";
  mail::ForgedResultsFilter f("mx.example.test");
  std::string out;
  f.feed(msg, out);
  f.finish(out);
  CHECK(out == msg);
}
