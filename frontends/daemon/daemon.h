// daemon/daemon.h: what the shipped daemons share: logging, the pid file, dropping privileges
// and detaching (docs/compatibility.md#daemons-startup-and-privileges).
//
// Thread-safety: Logger::log may be called from any thread; the rest at startup, before
// threads exist (detach) or once (drop_privileges).
#pragma once

#include "daemon/config.h"

#include <cmail/net/runtime.h>
#include <cmail/status.h>
#include <cmail/store/store.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace cmail::daemon {

// Lines prefixed with a timestamp ("Tue, 24 Nov 2026 10:03:46 +0000 "), to the log file if
// one is set, and to stderr while in the foreground. reopen() on SIGHUP (log rotation).
class Logger {
 public:
  Logger(int verbosity, std::string file);
  ~Logger();
  Status open();
  void reopen();
  void log(int level, std::string_view line);  // shown when level <= verbosity
  void set_foreground(bool f) { foreground_ = f; }

 private:
  int verbosity_;
  std::string path_;
  std::FILE* file_ = nullptr;
  bool foreground_ = true;
  std::mutex mu_;
};

// Forks into the background (setsid, stdio to /dev/null). The parent writes the child's pid
// to `pidfile` (if set) and exits 0. REQUIRES: no threads yet.
Status detach(const std::string& pidfile);
// Writes this process's pid (foreground runs; the original left the file empty,
// docs/compatibility.md#daemons-pid-file).
Status write_pidfile(const std::string& pidfile);
// When running as root: switches to `group` (or `user`'s primary group) and `user`.
Status drop_privileges(const std::string& user, const std::string& group);

// Makes freed large blocks (argon2's 19 MiB per password check, big messages) go back to the
// system: glibc otherwise raises its mmap threshold after the first such free and from then on
// keeps blocks that size in each thread's arena for the life of the process (19 MiB for every
// worker thread that ever checked a password). A process-wide allocator setting, so the
// daemons make it (start_daemon, cmail serve), not the library. No-op off glibc.
void return_large_blocks();

// What every daemon does before it serves (docs/compatibility.md#daemons-startup-and-privileges):
// opens the log, detaches into the background when `background` (the parent writes the pid file
// and exits) or else writes its own pid file, then opens the master database. On failure it says
// why in one line (on stderr before the log is open, in the log after) and returns null; the
// caller exits 1.
std::unique_ptr<store::Store> start_daemon(const std::string& name, const config::Common& common,
                                                 Logger& logger, bool background);

// The whole life of a listening daemon (cmail-smtpd, cmail-popd): `NAME CONFIG [nodrop]
// [nodetach]` (the last other word is the config file,
// docs/compatibility.md#daemons-command-line), the config loaded (errors as "NAME: FILE:LINE:
// message"), start_daemon, the listeners added, privileges dropped after binding, one line per
// listener on stdout, then serving until SIGTERM/SIGINT (graceful, 10 s); SIGHUP reopens the log.
// Returns the process's exit status.
struct ListeningDaemon {
  std::string name;         // "cmail-smtpd"
  std::string description;  // "Accept incoming mail" (the usage line)
  // Reads the config file; returns its common directives (and keeps the rest for `listen`).
  std::function<Result<config::Common>(const std::string& path)> load;
  // Adds the listeners; `log` lines go to the daemon's log at their level (shown when the
  // `verbosity` is at least that).
  std::function<Result<std::vector<net::BoundListener>>(net::Runtime&, store::Store&,
                                                        LogSink log)>
      listen;
  // Optional: runs when serving has ended (or start failed after `listen`), before the Runtime
  // is destroyed, to release what lives on its loop (cmail-smtpd's resolver).
  std::function<void()> stopped;
};
int run_listening_daemon(const ListeningDaemon& d, int argc, char** argv);

}  // namespace cmail::daemon
