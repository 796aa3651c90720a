#include "commands.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace cmail::admin {

int Context::fail(int code, const std::string& message) const {
  std::cerr << "cmail-admin-" << tool << ": " << message << "\n";
  return code;
}

int Context::fail(const Status& st) const {
  int code = kExitUsage;
  switch (st.code()) {
    case Status::Code::NotFound: code = kExitNotFound; break;
    case Status::Code::InvalidArgument: code = kExitInvalid; break;
    case Status::Code::AlreadyExists:
    case Status::Code::Constraint: code = kExitConstraint; break;
    case Status::Code::Busy: code = kExitBusy; break;
    case Status::Code::ReadOnly: code = kExitReadOnly; break;
    case Status::Code::Corruption:
    case Status::Code::Unsupported: code = kExitSchema; break;
    default: code = kExitUsage; break;
  }
  std::string msg = st.message();
  if (st.is_busy()) msg = "database is locked by another process (gave up waiting): " + dbpath;
  return fail(code, msg);
}

std::unique_ptr<store::Store> Context::open(bool read_only, int& exit_code) const {
  store::StoreOptions o;
  o.migrate = upgrade;
  o.read_only = read_only;
  if (const char* t = std::getenv("CMAIL_BUSY_TIMEOUT_MS")) o.busy_timeout_ms = std::atoi(t);
  // The store's notices (an upgrade, in one line) always go to stderr.
  o.logger = [this](const std::string& line) { std::cerr << "cmail-admin-" << tool << ": " << line << "\n"; };
  auto s = store::Store::open(dbpath, o);
  if (s) return std::move(*s);
  const Status& st = s.error();
  if (st.is_not_found() || st.code() == Status::Code::IoError) {
    exit_code = fail(open_failure_exit, "cannot open the database: " + st.message());
  } else {
    exit_code = fail(st);
  }
  return nullptr;
}

void print_row(const std::vector<int>& widths, const std::vector<std::string>& cells) {
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i) std::printf(" | ");
    std::printf("%*s", widths[i], cells[i].c_str());
  }
  std::printf("\n");
}

std::optional<std::string> read_password(const char* prompt) {
  std::string line;
  if (isatty(STDIN_FILENO)) {
    std::fprintf(stderr, "%s", prompt);
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    bool ok = static_cast<bool>(std::getline(std::cin, line));
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
    if (!ok) return std::nullopt;
  } else if (!std::getline(std::cin, line)) {
    line.clear();  // no input at all: blank, login disabled
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() > 256) return std::nullopt;
  return line;
}

}  // namespace cmail::admin
