// cmail/backends/budget.h: a bound on message data in flight, shared by the sessions of a
// process (or of a listener).
//
// A session takes octets from the budget as a message arrives and gives them back once the
// message is committed or dropped. When the budget is spent, new transactions get a temporary
// refusal (452 4.3.1, RFC 3463) and a message that would overspend it is dropped with the same
// reply at its end: the client keeps its copy and tries again later, so nothing is lost.
//
// Thread-safety: every method may be called from any thread (an atomic counter).
// Ownership: shared (std::shared_ptr) by the sessions and whoever configures it.
#pragma once

#include <cmail/export.h>

#include <atomic>
#include <cstdint>
#include <memory>

namespace cmail::backends {

class CMAIL_EXPORT DataBudget {
 public:
  explicit DataBudget(std::uint64_t limit) : limit_(limit) {}

  // Takes n octets if they fit (in use + n <= limit); takes nothing and returns false if not.
  bool take(std::uint64_t n);
  void give(std::uint64_t n) { used_.fetch_sub(n, std::memory_order_relaxed); }
  // Nothing left: a new transaction would be refused.
  bool spent() const { return in_use() >= limit_; }
  // Could n more octets be taken now (a SIZE= declaration, RFC 1870)?
  bool fits(std::uint64_t n) const { return n <= limit_ && in_use() <= limit_ - n; }

  std::uint64_t in_use() const { return used_.load(std::memory_order_relaxed); }
  std::uint64_t limit() const { return limit_; }

  // Octets taken by one holder, given back when it is destroyed (or moved into another Hold).
  class Hold {
   public:
    Hold() = default;
    explicit Hold(std::shared_ptr<DataBudget> budget) : budget_(std::move(budget)) {}
    Hold(Hold&& o) noexcept : budget_(std::move(o.budget_)), held_(o.held_) { o.held_ = 0; }
    Hold& operator=(Hold&& o) noexcept;
    ~Hold() { release(); }

    bool take(std::uint64_t n);  // true when taken (always, without a budget)
    void release();              // gives everything back
    std::uint64_t held() const { return held_; }
    const std::shared_ptr<DataBudget>& budget() const { return budget_; }

   private:
    std::shared_ptr<DataBudget> budget_;
    std::uint64_t held_ = 0;
  };

 private:
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> used_{0};
};

}  // namespace cmail::backends
