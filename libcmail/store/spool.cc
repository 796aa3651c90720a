// A message body in an unlinked file. See cmail/store/spool.h.
#include <cmail/store/spool.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cmail::store {

namespace {

// A full disk (or quota) is NoSpace, which intake answers with 452 (come back later).
Status io_error(const std::string& what) {
  const std::string msg = what + ": " + std::strerror(errno);
  return errno == ENOSPC || errno == EDQUOT ? Status::no_space(msg) : Status::io_error(msg);
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::create(const std::string& directory) {
  const std::string dir = directory.empty() ? "." : directory;
  int fd = -1;
#ifdef O_TMPFILE
  fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return std::unique_ptr<Spool>(new Spool(fd));
#endif
  // Filesystems without O_TMPFILE: a named file, unlinked at once.
  std::string name = dir + "/.cmail-spool-XXXXXX";
  fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return io_error("cannot create a spool file in " + dir);
  ::unlink(name.c_str());
  return std::unique_ptr<Spool>(new Spool(fd));
}

Spool::~Spool() { ::close(fd_); }

Status Spool::append(std::string_view bytes) {
  if (failed_) return Status::io_error("the spool file failed earlier");
  wire_.add(bytes);
  parser_.feed(bytes);
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_ = true;
      return io_error("cannot write the spool file");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  return Status();
}

mail::Part Spool::structure() const {
  mail::StructureParser copy = parser_;  // finish() ends a parse; this one may go on
  return copy.finish();
}

Status Spool::read(std::uint64_t offset, std::size_t n, std::string& out) const {
  out.resize(n);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return io_error("cannot read the spool file");
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return Status();
}

}  // namespace cmail::store
