#include <cmail/status.h>

namespace cmail {

const char* to_string(Status::Code code) {
  switch (code) {
    case Status::Code::Ok: return "OK";
    case Status::Code::NotFound: return "NotFound";
    case Status::Code::InvalidArgument: return "InvalidArgument";
    case Status::Code::AlreadyExists: return "AlreadyExists";
    case Status::Code::Constraint: return "Constraint";
    case Status::Code::Busy: return "Busy";
    case Status::Code::ReadOnly: return "ReadOnly";
    case Status::Code::Corruption: return "Corruption";
    case Status::Code::Unsupported: return "Unsupported";
    case Status::Code::IoError: return "IoError";
    case Status::Code::Internal: return "Internal";
    case Status::Code::NoSpace: return "NoSpace";
  }
  return "Unknown";
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(cmail::to_string(code())) + ": " + state_->message;
}

}  // namespace cmail
