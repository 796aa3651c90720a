// Process tokens: see cmail/process.h.
#include <cmail/process.h>

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace cmail {

namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

// Field 22 of /proc/PID/stat (starttime); "" when the process does not exist.
std::string start_time(long pid) {
  std::string stat = read_line("/proc/" + std::to_string(pid) + "/stat");
  std::size_t close = stat.rfind(')');  // the command name may contain spaces and ')'
  if (close == std::string::npos) return {};
  std::istringstream rest(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
  }
  return field;
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

std::string process_token(std::string_view prefix) {
  long pid = static_cast<long>(getpid());
  return std::string(prefix) + ":" + host_name() + ":" + read_line("/proc/sys/kernel/random/boot_id") + ":" +
         std::to_string(pid) + ":" + start_time(pid);
}

bool process_token_dead(std::string_view token) {
  std::vector<std::string> f = split(token, ':');
  if (f.size() != 5 || f[1] != host_name()) return false;
  if (f[2] != read_line("/proc/sys/kernel/random/boot_id")) return true;  // an earlier boot
  long pid = 0;
  try {
    pid = std::stol(f[3]);
  } catch (...) {
    return false;
  }
  if (pid <= 0) return false;
  return start_time(pid) != f[4];  // gone, or the pid now belongs to another process
}

}  // namespace cmail
