// Logging, pid files, privileges and detaching for the daemons.
#include "daemon/daemon.h"

#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace cmail::daemon {

Logger::Logger(int verbosity, std::string file) : verbosity_(verbosity), path_(std::move(file)) {}
Logger::~Logger() {
  if (file_) std::fclose(file_);
}

Status Logger::open() {
  if (path_.empty()) return Status();
  std::FILE* f = std::fopen(path_.c_str(), "a");
  if (!f) return Status::io_error("cannot open log file " + path_ + ": " + std::strerror(errno));
  std::lock_guard lock(mu_);
  if (file_) std::fclose(file_);
  file_ = f;
  return Status();
}

void Logger::reopen() { (void)open(); }

void Logger::log(int level, std::string_view line) {
  if (level > verbosity_) return;
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[64];
  // The original's timestamp (docs/compatibility.md#daemons-logging).
  std::strftime(stamp, sizeof stamp, "%a, %d %b %Y %T %z", &tm);
  std::lock_guard lock(mu_);
  if (file_) {
    std::fprintf(file_, "%s %.*s\n", stamp, static_cast<int>(line.size()), line.data());
    std::fflush(file_);
  }
  if (foreground_) std::fprintf(stderr, "%s %.*s\n", stamp, static_cast<int>(line.size()), line.data());
}

Status write_pidfile(const std::string& pidfile) {
  if (pidfile.empty()) return Status();
  std::FILE* f = std::fopen(pidfile.c_str(), "w");
  if (!f) return Status::io_error("cannot write pid file " + pidfile + ": " + std::strerror(errno));
  std::fprintf(f, "%d\n", static_cast<int>(getpid()));
  std::fclose(f);
  return Status();
}

Status detach(const std::string& pidfile) {
  pid_t pid = fork();
  if (pid < 0) return Status::io_error(std::string("fork: ") + std::strerror(errno));
  if (pid > 0) {
    if (!pidfile.empty()) {
      if (std::FILE* f = std::fopen(pidfile.c_str(), "w")) {
        std::fprintf(f, "%d\n", static_cast<int>(pid));
        std::fclose(f);
      }
    }
    _exit(0);
  }
  setsid();
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
  return Status();
}

Status drop_privileges(const std::string& user, const std::string& group) {
  if (geteuid() != 0 || (user.empty() && group.empty())) return Status();
  uid_t uid = 0;
  gid_t gid = 0;
  if (!user.empty()) {
    passwd* pw = getpwnam(user.c_str());
    if (!pw) return Status::invalid_argument("unknown user '" + user + "'");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  if (!group.empty()) {
    struct group* gr = getgrnam(group.c_str());
    if (!gr) return Status::invalid_argument("unknown group '" + group + "'");
    gid = gr->gr_gid;
  }
  if (chdir("/") != 0) return Status::io_error("chdir /");
  if (setgroups(0, nullptr) != 0 || setgid(gid) != 0) return Status::io_error(std::string("setgid: ") + std::strerror(errno));
  if (!user.empty() && setuid(uid) != 0) return Status::io_error(std::string("setuid: ") + std::strerror(errno));
  return Status();
}

void return_large_blocks() {
#if defined(__GLIBC__)
  // A fixed threshold: blocks of 1 MiB and more are mapped on their own and unmapped on free;
  // it also fixes the heap trim threshold at its default, so freed arena tops shrink too.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

std::unique_ptr<store::Store> start_daemon(const std::string& name, const config::Common& common, Logger& logger,
                                    bool background) {
  return_large_blocks();
  if (Status st = logger.open(); !st.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), st.message().c_str());
    return nullptr;
  }
  if (background) {
    if (Status st = detach(common.pidfile); !st.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), st.message().c_str());
      return nullptr;
    }
    logger.set_foreground(false);
  } else if (Status st = write_pidfile(common.pidfile); !st.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), st.message().c_str());
    return nullptr;
  }
  store::StoreOptions so;
  so.logger = [&logger](const std::string& l) { logger.log(0, l); };
  auto store = store::Store::open(common.database, so);
  if (!store) {
    logger.log(0, "cannot use the database: " + store.error().message());
    return nullptr;
  }
  return std::move(*store);
}

int run_listening_daemon(const ListeningDaemon& d, int argc, char** argv) {
  std::string path;
  bool nodrop = false, nodetach = false;
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "nodrop") nodrop = true;
    else if (w == "nodetach") nodetach = true;
    else path = w;  // the last other word wins (docs/compatibility.md#daemons-command-line)
  }
  if (path.empty()) {
    std::printf("%s - %s\nUsage: %s <conffile> [nodrop] [nodetach]\n", d.name.c_str(), d.description.c_str(), argv[0]);
    return 1;
  }
  auto common = d.load(path);
  if (!common) {
    std::fprintf(stderr, "%s: %s\n", d.name.c_str(), common.error().message().c_str());
    return 1;
  }
  Logger logger(common->verbosity, common->logfile);
  auto store = start_daemon(d.name, *common, logger, !common->logfile.empty() && !nodetach);
  if (!store) return 1;
  net::Runtime runtime;
  // What `listen` made on the loop goes before the Runtime, on every way out.
  struct Release {
    const std::function<void()>& stopped;
    ~Release() {
      if (stopped) stopped();
    }
  } release{d.stopped};
  auto bound = d.listen(runtime, *store, LogSink([&](int level, std::string_view l) { logger.log(level, l); }, common->verbosity));
  if (!bound) {
    logger.log(0, bound.error().message());
    return 1;
  }
  if (Status st = drop_privileges(nodrop ? "" : common->user, nodrop ? "" : common->group); !st.ok()) {
    logger.log(0, "cannot drop privileges: " + st.message());
    return 1;
  }
  // Signals first: whoever reads the listener lines may signal at once (SIGHUP's default
  // action would end the process).
  runtime.handle_signals(std::chrono::seconds(10), [&] { logger.reopen(); });
  for (const net::BoundListener& b : *bound) std::printf("%s %s:%u\n", b.kind.c_str(), b.host.c_str(), b.port);
  std::fflush(stdout);
  runtime.run();
  logger.log(1, "stopped");
  return 0;
}

}  // namespace cmail::daemon
