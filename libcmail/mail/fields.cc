// Header field values: unique ids and RFC 5322 dates. See cmail/mail/fields.h.
#include <cmail/mail/fields.h>

#include <sys/random.h>

#include <cstdio>
#include <ctime>
#include <string>

namespace cmail::mail {

std::string new_queue_id() {
  static const char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  unsigned char bytes[16];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  std::string id;
  for (unsigned char b : bytes) id += kAlphabet[b % 62];  // 62^16 ids; the small bias is harmless
  return id;
}

std::string rfc5322_date(std::int64_t unix_time) {
  // Every Received header of a message takes the time: one formatting per second and thread.
  thread_local std::int64_t cached_time = -1;
  thread_local std::string cached;
  if (unix_time == cached_time) return cached;
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // RFC 5322 3.3: day-name ", " day month year hour ":" minute ":" second zone.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  cached_time = unix_time;
  cached = buf;
  return cached;
}

}  // namespace cmail::mail
