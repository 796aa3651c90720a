// The engine kernel: input routing, output, transport events. See cmail/proto/conversation.h.
#include <cmail/proto/conversation.h>

#include <cmail/proto/command.h>

#include <variant>

namespace cmail::proto {

Conversation::Conversation(LineEnd line_end, std::size_t max_buffered_input)
    : in_(line_end, max_buffered_input) {}

void Conversation::consume_output(std::size_t n) {
  out_pos_ += std::min(n, out_.size() - out_pos_);
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ >= 64 * 1024 && out_pos_ * 2 >= out_.size()) {
    out_.erase(0, out_pos_);  // long responses made as they are taken (POP3 RETR)
    out_pos_ = 0;
  }
}

std::optional<Event> Conversation::next_event() {
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  if (std::holds_alternative<StartTls>(e) && tls_ == Tls::Queued) tls_ = Tls::Taken;
  return e;
}

bool Conversation::accept_input(std::string_view bytes) {
  if (closed_) return false;
  if (tls_ == Tls::Queued) {
    // RFC 3207 4.2: still the start of the TLS handshake, never commands.
    for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
      if (auto* st = std::get_if<StartTls>(&*it)) {
        st->trailing.append(bytes);
        break;
      }
    }
    return false;
  }
  if (tls_ == Tls::Taken) return false;  // the transport's: they go to TLS
  in_.append(bytes);
  return true;
}

LineReader::Result Conversation::next_command_line(std::size_t limit, std::size_t auth_limit, bool in_sasl,
                                                  std::string_view& line) {
  const bool auth = in_sasl || starts_with_upper(in_.pending(), "AUTH ");
  return in_.next_line(auth ? auth_limit : limit, line);
}

void Conversation::start_tls() {
  events_.push_back(StartTls{in_.take_all()});
  tls_ = Tls::Queued;
}

bool Conversation::finish_tls() {
  if (tls_ == Tls::None) return false;  // implicit TLS: nothing was asked for
  tls_ = Tls::None;
  in_.clear();
  return true;
}

void Conversation::close() {
  if (closed_) return;
  closed_ = true;
  in_.clear();
  events_.push_back(Close{});
}

}  // namespace cmail::proto
