// The doctest main of unit-tests, net-tests and resolver-tests, with a listener that gives
// every test case its own random seed (tests/unit/seed.h) and, when a check fails, prints that
// seed and how to run the test case again with it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "seed.h"

#include <ostream>
#include <string>
#include <vector>

namespace {

// A doctest test-case filter that matches exactly `name` (commas and backslashes escaped),
// single-quoted for a POSIX shell.
std::string shell_filter(const std::string& name) {
  std::string out = "'";
  for (char c : name) {
    if (c == ',' || c == '\\') out += '\\';
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

struct SeedListener : doctest::IReporter {
  const doctest::ContextOptions& opt;
  std::vector<std::string> subcases;  // the subcases entered now
  std::vector<std::string> reached;   // the subcase path of this run (what doctest calls the deepest)
  bool failed = false;                // a check failed in this run

  explicit SeedListener(const doctest::ContextOptions& o) : opt(o) {}

  // After each run of a test case (one per subcase path), below doctest's own report of it.
  void tell_if_failed() {
    if (!failed || opt.cout == nullptr) return;
    failed = false;
    const cmail::test::SeedState& s = cmail::test::seed_state();
    std::string path;
    for (const std::string& sc : reached) path += (path.empty() ? "" : " / ") + sc;
    *opt.cout << "[seed] test case \"" << s.test_case << "\""
              << (path.empty() ? "" : ", subcase \"" + path + "\",") << " failed with seed " << s.seed
              << (cmail::test::seed_from_environment() ? " (from CMAIL_TEST_SEED)" : " (its own, from its name)")
              << "\n[seed] run it again: CMAIL_TEST_SEED=" << s.seed << " " << opt.binary_name.c_str()
              << " --test-case=" << shell_filter(s.test_case) << "\n";
  }
  void enter(const doctest::TestCaseData& tc) {
    cmail::test::reseed(tc.m_name);
    subcases.clear();
    reached.clear();
    failed = false;
  }

  void test_case_start(const doctest::TestCaseData& tc) override { enter(tc); }
  void test_case_reenter(const doctest::TestCaseData& tc) override {
    tell_if_failed();
    enter(tc);
  }
  void test_case_end(const doctest::CurrentTestCaseStats&) override { tell_if_failed(); }
  void subcase_start(const doctest::SubcaseSignature& sc) override {
    subcases.emplace_back(sc.m_name.c_str());
    reached = subcases;
  }
  void subcase_end() override {
    if (!subcases.empty()) subcases.pop_back();
  }
  void log_assert(const doctest::AssertData& a) override { failed = failed || a.m_failed; }
  void log_message(const doctest::MessageData& m) override {
    failed = failed || (m.m_severity & (doctest::assertType::is_check | doctest::assertType::is_require));
  }
  void test_case_exception(const doctest::TestCaseException&) override { failed = true; }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("cmail-seed", 1, SeedListener);

}  // namespace
