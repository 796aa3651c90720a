// Sessions per user: see cmail/backends/session_limit.h.
#include <cmail/backends/session_limit.h>

namespace cmail::backends {

std::unique_ptr<SessionLimit::Ticket> SessionLimit::acquire(const std::string& user) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::uint32_t& n = counts_[user];
    if (max_ != 0 && n >= max_) return nullptr;  // n >= 1 here: the entry existed
    ++n;
  }
  return std::make_unique<Ticket>(shared_from_this(), user);
}

std::uint32_t SessionLimit::count(const std::string& user) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(user);
  return it == counts_.end() ? 0 : it->second;
}

void SessionLimit::release(const std::string& user) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(user);
  if (it != counts_.end() && --it->second == 0) counts_.erase(it);
}

}  // namespace cmail::backends
