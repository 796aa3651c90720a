#include <cmail/proto/sasl.h>

#include <cmail/smtp/syntax.h>

#include <doctest/doctest.h>

using namespace cmail;
using namespace cmail::smtp;

TEST_CASE("smtp syntax: paths, one table for parse and format") {
  struct Case {
    const char* wire;
    bool valid;
    const char* address;  // Path::address()
    const char* back;     // Path::to_wire()
  };
  const Case cases[] = {
      {"<user@example.test>", true, "user@example.test", "user@example.test"},
      {"<first.last+tag@sub.example.test>", true, "first.last+tag@sub.example.test", "first.last+tag@sub.example.test"},
      {"<\"john doe\"@example.test>", true, "john doe@example.test", "\"john doe\"@example.test"},
      {"<\"a@b\"@local.test>", true, "a@b@local.test", "\"a@b\"@local.test"},  // quoted @ stays in the local part
      {"<\"q\\\"x\"@h.test>", true, "q\"x@h.test", "\"q\\\"x\"@h.test"},
      {"<@relay1.test,@relay2.test:user@dest.test>", true, "user@dest.test", "user@dest.test"},  // source route ignored
      {"<user%other.test@local.test>", true, "user%other.test@local.test", "user%other.test@local.test"},
      {"<host!user@local.test>", true, "host!user@local.test", "host!user@local.test"},
      {"<user@[192.0.2.1]>", true, "user@[192.0.2.1]", "user@[192.0.2.1]"},
      {"<user@[IPv6:2001:db8::1]>", true, "user@[IPv6:2001:db8::1]", "user@[IPv6:2001:db8::1]"},
      {"<Postmaster>", true, "Postmaster", "Postmaster"},
      {"<jöhn@exämple.test>", true, "jöhn@exämple.test", "jöhn@exämple.test"},
      {"<user@example.test.>", false, "", ""},  // trailing dot
      {"<.user@example.test>", false, "", ""},
      {"<us..er@example.test>", false, "", ""},
      {"<user@-bad.test>", false, "", ""},
      {"<user@exa_mple.test>", false, "", ""},
      {"<user@example@test>", false, "", ""},
      {"<user>", false, "", ""},
      {"user@example.test", false, "", ""},  // brackets are required
      {"<user@[300.1.1.1]>", false, "", ""},
      {"<a@\xff\xfe.test>", false, "", ""},  // not UTF-8
      {"<>", false, "", ""},                 // not a forward path
      {"<user@example.test", false, "", ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.wire);
    auto p = parse_path(c.wire, false);
    CHECK(p.has_value() == c.valid);
    if (!p || !c.valid) continue;
    CHECK(p->address() == c.address);
    CHECK(p->to_wire() == c.back);
    auto again = parse_path("<" + p->to_wire() + ">", false);
    REQUIRE(again.has_value());
    CHECK(*again == *p);
  }
  auto null = parse_path("<>", true);
  REQUIRE(null.has_value());
  CHECK(null->null());
}

TEST_CASE("smtp syntax: MAIL and RCPT parameters") {
  auto m = parse_mail_from(" <a@b.test> SIZE=1000 BODY=8bitmime RET=HDRS ENVID=QQ+2B1 AUTH=<>");
  REQUIRE(std::holds_alternative<MailCommand>(m));
  auto& mc = std::get<MailCommand>(m);
  CHECK(mc.params.size == std::optional<std::uint64_t>(1000));
  CHECK(mc.params.body == BodyType::EightBitMime);
  CHECK(mc.params.ret == std::optional<std::string>("HDRS"));
  CHECK(mc.params.envid == std::optional<std::string>("QQ+1"));
  CHECK(format_mail_params(mc.params) == " SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1 AUTH=<>");
  const char* bad[] = {"<a@b.test> SIZE=x", "<a@b.test> SIZE=1 SIZE=2", "<a@b.test> BODY=9BIT",
                       "<a@b.test> RET=ALL", "<a@b.test> ENVID=+ZZ", "<a@b.test>SIZE=1", "a@b.test"};
  for (const char* b : bad) {
    CAPTURE(b);
    CHECK(std::holds_alternative<SyntaxError>(parse_mail_from(b)));
  }
  auto r = parse_rcpt_to("<c@d.test> NOTIFY=success,delay ORCPT=rfc822;c+40d.test");
  REQUIRE(std::holds_alternative<RcptCommand>(r));
  auto& rc = std::get<RcptCommand>(r);
  CHECK(rc.params.notify == std::optional<std::string>("SUCCESS,DELAY"));
  CHECK(rc.params.orcpt == std::optional<std::string>("rfc822;c@d.test"));
  CHECK(format_rcpt_params(rc.params) == " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c@d.test");  // "@" is an xchar
  CHECK(std::holds_alternative<SyntaxError>(parse_rcpt_to("<c@d.test> NOTIFY=NEVER,SUCCESS")));
  CHECK(std::holds_alternative<SyntaxError>(parse_rcpt_to("<>")));
}

TEST_CASE("smtp syntax: liberal envelopes, as cmail and Postfix's default take them") {
  // The argument after "RCPT TO:" or "MAIL FROM:"; address() of the path, or nullptr if refused
  // in the liberal mode; whether the strict mode takes it as well; the NOTIFY parameter seen.
  struct Case {
    const char* arg;
    const char* address;
    bool strict;
    const char* notify;
  };
  const Case cases[] = {
      {"<user@example.test>", "user@example.test", true, nullptr},
      {"foo@bar.baz", "foo@bar.baz", false, nullptr},
      {"foo@bar.baz NOTIFY=NEVER", "foo@bar.baz", false, "NEVER"},  // parameters split off
      {" foo@bar.baz  NOTIFY=NEVER", "foo@bar.baz", false, "NEVER"},
      {"<test>", "test", false, nullptr},  // no domain
      {"test", "test", false, nullptr},
      {"test NOTIFY=NEVER", "test", false, "NEVER"},
      {"<Postmaster>", "Postmaster", true, nullptr},
      {"<(some comments @ local part)real-local@domain(comment).part>", "real-local@domain.part", false, nullptr},
      {"<user@example.test> (a comment)", "user@example.test", false, nullptr},
      {"<user@example.test>(a comment) NOTIFY=NEVER", "user@example.test", false, "NEVER"},
      {"(comment) <user@example.test>", "user@example.test", false, nullptr},
      {"foo@bar.baz (comment) NOTIFY=NEVER", "foo@bar.baz", false, "NEVER"},
      {"John Doe <john@example.test>", "john@example.test", false, nullptr},
      {"\"Doe, John\" <john@example.test> NOTIFY=NEVER", "john@example.test", false, "NEVER"},
      {"John Q. Public (the third) <john@example.test>", "john@example.test", false, nullptr},
      {"<\"quoted part m@y contain crazy crap\"@domain.part>", "quoted part m@y contain crazy crap@domain.part", true, nullptr},
      {"\"john doe\"@example.test NOTIFY=NEVER", "john doe@example.test", false, "NEVER"},
      {"<\"so.me;:,<>\".unusual@stuff>", "so.me;:,<>.unusual@stuff", false, nullptr},
      {"<#'/*-$%&+=_?^!`{}|~@crazy.crap>", "#'/*-$%&+=_?^!`{}|~@crazy.crap", true, nullptr},
      {"<\" \"@domain.part>", " @domain.part", true, nullptr},
      {"<user\\@x@host>", "user@x@host", false, nullptr},  // escaped '@' stays in the local part
      {"<first..last@example.test>", "first..last@example.test", false, nullptr},
      {"<.user.@example.test>", ".user.@example.test", false, nullptr},
      {"<@relay.test:user@dest.test>", "user@dest.test", true, nullptr},
      {"@relay.test:user@dest.test", "user@dest.test", false, nullptr},
      {"< user@example.test >", "user@example.test", false, nullptr},
      {"<user @ example.test>", "user@example.test", false, nullptr},
      {"<foo@bar@baz>", nullptr, false, nullptr},  // a second '@'
      {"foo@bar.baz@local.test", nullptr, false, nullptr},
      {"<there.is.a(runaway comment@this.path>", nullptr, false, nullptr},
      {"<this)comment@never.opened>", nullptr, false, nullptr},
      {"<a\"b@c>", nullptr, false, nullptr},  // unbalanced quote
      {"<john doe@example.test>", nullptr, false, nullptr},  // white space inside the local part
      {"<user@exa mple.test>", nullptr, false, nullptr},
      {"<user@example.test.>", nullptr, false, nullptr},  // domains stay strict
      {"<user@-bad.test>", nullptr, false, nullptr},
      {"<user@[300.1.1.1]>", nullptr, false, nullptr},
      {"user@example.test>", nullptr, false, nullptr},
      {"<user@example.test", nullptr, false, nullptr},
      {"<user@example.test>x", nullptr, false, nullptr},
      {"<a@b.test> <c@d.test>", nullptr, false, nullptr},  // the second is no parameter
      {"<victim@remote.test>@local.test", nullptr, false, nullptr},
      {"victim@remote.test <x@local.test>", nullptr, false, nullptr},  // no name with '@'
      {"victim@remote.test<x@local.test>", nullptr, false, nullptr},
      {"victim@remote.test @local.test", nullptr, false, nullptr},
      {"<>", nullptr, false, nullptr},  // not a forward path
      {"", nullptr, false, nullptr},
      {"<@relay.test>", nullptr, false, nullptr},
      {"<a@\xff\xfe.test>", nullptr, false, nullptr},  // not UTF-8
      {"a@[x:>]", nullptr, false, nullptr},  // found by fuzzing: no bracketed path could carry it
  };
  const SyntaxOptions liberal{.utf8 = true, .strict = false}, strict{};
  for (const Case& c : cases) {
    std::string arg = c.arg;
    CAPTURE(arg);
    auto r = parse_rcpt_to(c.arg, liberal);
    CHECK(std::holds_alternative<RcptCommand>(r) == (c.address != nullptr));
    auto s = parse_rcpt_to(c.arg, strict);
    CHECK(std::holds_alternative<RcptCommand>(s) == c.strict);
    if (auto* e = std::get_if<SyntaxError>(&r)) CHECK(e->reply.code == 501);
    auto* rc = std::get_if<RcptCommand>(&r);
    if (!rc) continue;
    CHECK(rc->path.address() == c.address);
    CHECK(rc->params.notify == (c.notify ? std::optional<std::string>(c.notify) : std::nullopt));
    if (auto* sc = std::get_if<RcptCommand>(&s)) CHECK(sc->path == rc->path);  // one meaning
    // What the client side would send again means the same path.
    auto again = parse_rcpt_to("<" + rc->path.to_wire() + ">", liberal);
    REQUIRE(std::holds_alternative<RcptCommand>(again));
    CHECK(std::get<RcptCommand>(again).path == rc->path);
  }
}

TEST_CASE("smtp syntax: liberal reverse paths keep the parameters apart") {
  const SyntaxOptions liberal{.utf8 = true, .strict = false};
  struct Case {
    const char* arg;
    const char* address;
    std::optional<std::uint64_t> size;
    const char* auth;
  };
  const Case cases[] = {
      {"a@b.test SIZE=100", "a@b.test", 100, nullptr},
      {"a@b.test AUTH=<>", "a@b.test", std::nullopt, "<>"},
      {"root AUTH=<> SIZE=5", "root", 5, "<>"},  // the '<' is the parameter's, not a path's
      {"Some Name <a@b.test> AUTH=<>", "a@b.test", std::nullopt, "<>"},
      {"<> SIZE=5", "", 5, nullptr},
      {"<(no sender)> SIZE=5", "", 5, nullptr},
  };
  for (const Case& c : cases) {
    std::string arg = c.arg;
    CAPTURE(arg);
    auto m = parse_mail_from(c.arg, liberal);
    REQUIRE(std::holds_alternative<MailCommand>(m));
    auto& mc = std::get<MailCommand>(m);
    CHECK(mc.path.address() == c.address);
    CHECK(mc.params.size == c.size);
    CHECK(mc.params.auth == (c.auth ? std::optional<std::string>(c.auth) : std::nullopt));
  }
  CHECK(std::holds_alternative<SyntaxError>(parse_mail_from("a@b.test SIZE=x", liberal)));
  CHECK(std::holds_alternative<SyntaxError>(parse_mail_from("", liberal)));
  CHECK(std::holds_alternative<SyntaxError>(parse_mail_from("a@b.test", {})));  // strict
  // UTF-8 still needs SMTPUTF8 (RFC 6531 3.4), in either form.
  auto u = parse_mail_from("jöhn@exämple.test", liberal);
  REQUIRE(std::holds_alternative<SyntaxError>(u));
  CHECK(std::get<SyntaxError>(u).reply.code == 553);
  CHECK(std::holds_alternative<MailCommand>(parse_mail_from("jöhn@exämple.test SMTPUTF8", liberal)));
}

TEST_CASE("smtp syntax: replies parse and format with enhanced codes") {
  ReplyParser p;
  auto a = p.feed("250-mx.test greets you");
  REQUIRE(a.has_value());
  CHECK_FALSE(a->has_value());
  REQUIRE(p.feed("250-PIPELINING").has_value());
  auto done = p.feed("250 SIZE 1000");
  REQUIRE(done.has_value());
  REQUIRE(done->has_value());
  CHECK((*done)->lines == std::vector<std::string>{"mx.test greets you", "PIPELINING", "SIZE 1000"});
  auto e = p.feed("550 5.1.1 No such user");
  REQUIRE(e.has_value());
  REQUIRE(e->has_value());
  CHECK((*e)->enhanced == std::optional<EnhancedCode>(EnhancedCode{5, 1, 1}));
  CHECK((*e)->lines[0] == "No such user");
  CHECK((*e)->format() == "550 5.1.1 No such user\r\n");
  CHECK((*e)->summary() == "550 5.1.1 No such user");
  CHECK_FALSE(p.feed("abc").has_value());
  CHECK_FALSE(p.feed("250x").has_value());
  Reply multi = reply(451, {4, 3, 0}, "one");
  multi.lines.push_back("two");
  CHECK(multi.format() == "451-4.3.0 one\r\n451 4.3.0 two\r\n");  // RFC 2034: on every line
}

TEST_CASE("sasl: base64 is strict, PLAIN and LOGIN exchanges") {
  CHECK(sasl::base64_encode("") == "");
  CHECK(sasl::base64_encode("f") == "Zg==");
  CHECK(sasl::base64_encode("fo") == "Zm8=");
  CHECK(sasl::base64_encode("foo") == "Zm9v");
  CHECK(sasl::base64_decode("Zm9vYg==") == std::optional<std::string>("foob"));
  for (const char* bad : {"Zm9", "Zm=v", "Zg=", "Zh==", "Zm9v\n", "AGNiZGV2AGNi=GV2", "*"}) {
    CAPTURE(bad);
    CHECK_FALSE(sasl::base64_decode(bad).has_value());
  }
  sasl::ServerExchange plain(sasl::Mechanism::Plain);
  auto done = plain.start(std::string_view("\0cbdev\0cbdev", 12));
  REQUIRE(std::holds_alternative<sasl::ServerExchange::Done>(done));
  CHECK(std::get<sasl::ServerExchange::Done>(done).credentials.authcid == "cbdev");
  // One NUL only (the original's "AGNI" case, docs/compatibility.md#users-sasl-plain) is malformed.
  CHECK(std::holds_alternative<sasl::ServerExchange::Failed>(plain.start(std::string_view("\0cH", 3))));
  CHECK(sasl::plain_message("", "usr", "secret") == std::string("\0usr\0secret", 11));  // no trailing NUL
  sasl::ServerExchange login(sasl::Mechanism::Login);
  CHECK(std::get<sasl::ServerExchange::Challenge>(login.start(std::nullopt)).data == "Username:");
  CHECK(std::get<sasl::ServerExchange::Challenge>(login.step("bob")).data == "Password:");
  auto l = login.step("pw");
  REQUIRE(std::holds_alternative<sasl::ServerExchange::Done>(l));
  CHECK(std::get<sasl::ServerExchange::Done>(l).credentials.password == "pw");
  CHECK(sasl::parse_mechanism("plain") == std::optional<sasl::Mechanism>(sasl::Mechanism::Plain));
  CHECK_FALSE(sasl::parse_mechanism("PLAINX").has_value());  // cmail matched 5-char prefixes
}

TEST_CASE("smtp::Path::from_address is the inverse of address() and of to_wire()") {
  for (const char* a : {"", "postmaster", "a@b.test", "user@x@host.test", "j\xc3\xb6rg@b.test"}) {
    CAPTURE(a);
    CHECK(cmail::smtp::Path::from_address(a).address() == a);
  }
  // The wire form, as the store keeps envelope addresses: quotes and escapes undone.
  for (const char* local : {"john doe", "user@remote.example", "a\"b", "back\\slash", ".dot", "plain"}) {
    CAPTURE(local);
    cmail::smtp::Path p{local, "x.test"};
    CHECK(cmail::smtp::Path::from_address(p.to_wire()) == p);
  }
  CHECK(cmail::smtp::Path{"user@remote.example", "local.test"}.to_wire() == "\"user@remote.example\"@local.test");
  auto p = cmail::smtp::Path::from_address("user@x@host.test");
  CHECK(p.local == "user@x");
  CHECK(p.domain == "host.test");
  CHECK(cmail::smtp::Path::from_address("").null());
}
