// An imap::Session with its mailboxes in memory, for the engine tests (imap_server_test.cc,
// imap_ext_test.cc): name -> special use, subscriptions apart (a name may be subscribed without
// existing), every call recorded in `calls`. LOGIN takes alice/secret. Tests derive from it
// for what they need beyond that. Not thread-safe (one test's engine).
#pragma once

#include <cmail/imap/server.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace cmail::test {

struct MemoryMailboxSession : imap::Session {
  std::vector<std::string> calls;
  std::map<std::string, std::string> boxes{{"INBOX", ""}, {"Sent", "\\Sent"}, {"Work/2026", ""}};
  std::set<std::string> subscribed;

  imap::Verdict login(const sasl::Credentials& c) override {
    if (c.authcid != "alice" || c.password != "secret")
      return imap::Verdict::reject(imap::RespCode::AuthenticationFailed, "Invalid user name or password");
    return imap::Verdict::user(c.authcid);
  }
  imap::Verdict list_mailboxes() override {
    calls.push_back("LIST");
    std::vector<imap::MailboxInfo> out;
    for (auto& [name, use] : boxes) out.push_back({name, use, true, subscribed.count(name) > 0});
    for (auto& name : subscribed)
      if (!boxes.count(name)) out.push_back({name, "", false, true});
    return imap::Verdict::mailboxes(out);
  }
  imap::Verdict create(const std::string& name, const std::string& use) override {
    calls.push_back("CREATE " + name + (use.empty() ? "" : " " + use));
    if (!boxes.emplace(name, use).second) return imap::Verdict::reject(imap::RespCode::AlreadyExists, "It exists");
    return imap::Verdict::accept();
  }
};

}  // namespace cmail::test
