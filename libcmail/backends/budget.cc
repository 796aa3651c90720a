// A bound on message data in flight. See cmail/backends/budget.h.
#include <cmail/backends/budget.h>

namespace cmail::backends {

bool DataBudget::take(std::uint64_t n) {
  std::uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (n > limit_ || used > limit_ - n) return false;
  } while (!used_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  return true;
}

DataBudget::Hold& DataBudget::Hold::operator=(Hold&& o) noexcept {
  if (this != &o) {
    release();
    budget_ = std::move(o.budget_);
    held_ = o.held_;
    o.held_ = 0;
  }
  return *this;
}

bool DataBudget::Hold::take(std::uint64_t n) {
  if (!budget_) return true;
  if (!budget_->take(n)) return false;
  held_ += n;
  return true;
}

void DataBudget::Hold::release() {
  if (budget_ && held_) budget_->give(held_);
  held_ = 0;
}

}  // namespace cmail::backends
