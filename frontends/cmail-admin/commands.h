// frontends/cmail-admin/commands.h: the modules of cmail-admin and what they share.
//
// Each module mirrors one of cmail's original tools (docs/compatibility.md#admin-tools): same
// commands, same arguments, same table formats on stdout, same exit codes, except where the
// project fixes a quirk (docs/admin.md, "Differences from the original tools"). Bad input gets one
// line on stderr ("cmail-admin-<tool>: ..."), a non-zero exit and no change. No SQL here:
// everything goes through cmail::Store and cmail::Directory.
#pragma once

#include <cmail/status.h>
#include <cmail/store/directory.h>
#include <cmail/store/store.h>

#include <memory>
#include <string>
#include <vector>

namespace cmail::admin {

// Exit codes (docs/admin.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitNotFound = 2;
inline constexpr int kExitInvalid = 3;
inline constexpr int kExitUnhealthy = 4;
inline constexpr int kExitConstraint = 5;
inline constexpr int kExitBusy = 6;
inline constexpr int kExitReadOnly = 7;
inline constexpr int kExitSchema = 11;
inline constexpr int kExitArgs = 255;  // wrong number of arguments (the original's -1)

struct Context {
  std::string tool;    // "user", "address", ... (messages say "cmail-admin-<tool>: ...")
  std::string dbpath;
  int verbosity = 0;
  bool upgrade = true;                 // upgrade an older schema on open; false: --no-upgrade
  int open_failure_exit = kExitUsage;  // the tool's code for "cannot open the database"
  std::vector<std::string> args;       // the command and its arguments

  // Prints "cmail-admin-<tool>: message" on stderr and returns `code`.
  int fail(int code, const std::string& message) const;
  // Maps a failed Status to its exit code and prints it.
  int fail(const Status& st) const;
  // Opens the master database (read_only for pure reads). An older schema is upgraded first,
  // with one line on stderr naming the backup (docs/compatibility.md#admin-tools-older-schemas),
  // unless `upgrade` is off: then it is refused (exit 11). On failure prints why and sets
  // `exit_code`; returns null.
  std::unique_ptr<store::Store> open(bool read_only, int& exit_code) const;
};

// Prints a table: printf-style widths, header row, separator line, then rows.
void print_row(const std::vector<int>& widths, const std::vector<std::string>& cells);

int run_user(Context& ctx);
int run_address(Context& ctx);
int run_smtpd(Context& ctx);
int run_popd(Context& ctx);
int run_imapd(Context& ctx);
int run_permissions(Context& ctx);
int run_queue(Context& ctx);
int run_dkim(Context& ctx);
int run_dmarc(Context& ctx);
int run_database(Context& ctx);  // init, migrate, check, backup

void usage_user();
void usage_address();
void usage_smtpd();
void usage_popd();
void usage_imapd();
void usage_permissions();
void usage_queue();
void usage_dkim();
void usage_dmarc();
void usage_main();

// Reads a password without echo from the terminal, or one line from stdin when it is not a
// terminal. nullopt when input fails or is longer than 256 characters.
std::optional<std::string> read_password(const char* prompt);

}  // namespace cmail::admin
