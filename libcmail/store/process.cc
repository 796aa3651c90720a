// Process identities: see cmail/store/process.h.
#include <cmail/store/process.h>

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace cmail::store {

namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

}  // namespace

std::optional<std::uint64_t> process_start_time(std::int64_t pid) {
  if (pid <= 0) return std::nullopt;
  std::string stat = read_line("/proc/" + std::to_string(pid) + "/stat");
  std::size_t close = stat.rfind(')');  // the command name may hold spaces and ')'
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::string f;
  for (int i = 3; i <= 22; ++i)
    if (!(fields >> f)) return std::nullopt;
  try {
    return std::stoull(f);
  } catch (...) {
    return std::nullopt;
  }
}

const ProcessIdentity& this_process() {
  static const ProcessIdentity me = [] {
    ProcessIdentity p;
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) == 0) p.host = name;
    if (p.host.empty()) p.host = "localhost";
    p.boot_id = read_line("/proc/sys/kernel/random/boot_id");
    if (p.boot_id.empty()) p.boot_id = "unknown";
    p.pid = static_cast<std::int64_t>(getpid());
    p.start_time = process_start_time(p.pid).value_or(0);
    return p;
  }();
  return me;
}

bool process_gone(const ProcessIdentity& p) {
  const ProcessIdentity& me = this_process();
  if (p.host != me.host) return false;
  if (p.boot_id != me.boot_id) return true;  // the machine restarted since
  auto start = process_start_time(p.pid);
  return !start || *start != p.start_time;
}

std::string process_token(std::string_view prefix) {
  const ProcessIdentity& me = this_process();
  return std::string(prefix) + ":" + me.host + ":" + me.boot_id + ":" + std::to_string(me.pid) + ":" +
         std::to_string(me.start_time);
}

bool process_token_dead(std::string_view token) {
  std::vector<std::string> f = split(token, ':');
  if (f.size() != 5) return false;
  ProcessIdentity p;
  p.host = f[1];
  p.boot_id = f[2];
  try {
    p.pid = std::stoll(f[3]);
    p.start_time = std::stoull(f[4]);
  } catch (...) {
    return false;
  }
  return process_gone(p);
}

}  // namespace cmail::store
