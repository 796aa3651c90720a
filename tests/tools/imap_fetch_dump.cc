// imap-fetch-dump: what cmail's FETCH item encoders (cmail/imap/fetch.h) answer for one stored
// message, for tests/integration/imap_dovecot_test.py to compare with a reference server.
//
//   imap-fetch-dump [--utf8] MESSAGE_FILE FETCH_ATT...
//
// Each FETCH_ATT is one fetch-att as a client sends it ("BODY.PEEK[1.MIME]", "BINARY.SIZE[2]").
// For each, one frame on stdout: "OK <n>\n" and the n octets of the data item's text, "NO
// UNKNOWN-CTE\n", or "BAD <text>\n" when the item does not parse. UID, FLAGS, INTERNALDATE and
// MODSEQ come from fixed values (UID 1, no flags, time 0, mod-sequence 1). Exit status 2 for a
// usage error or an unreadable file.
#include <cmail/imap/fetch.h>
#include <cmail/mail/structure.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>

int main(int argc, char** argv) {
  int i = 1;
  bool utf8 = false;
  if (i < argc && std::string_view(argv[i]) == "--utf8") {
    utf8 = true;
    ++i;
  }
  if (argc - i < 2) {
    std::cerr << "usage: imap-fetch-dump [--utf8] MESSAGE_FILE FETCH_ATT...\n";
    return 2;
  }
  std::ifstream in(argv[i], std::ios::binary);
  if (!in) {
    std::cerr << "imap-fetch-dump: cannot read " << argv[i] << "\n";
    return 2;
  }
  std::string octets((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  cmail::mail::Part root = cmail::mail::parse_structure(octets);
  cmail::imap::MessageData message;
  message.structure = &root;
  message.octets = octets;
  message.uid = 1;
  message.modseq = 1;
  for (++i; i < argc; ++i) {
    auto item = cmail::imap::parse_fetch_att(argv[i]);
    if (!item) {
      std::cout << "BAD " << argv[i] << "\n";
      continue;
    }
    auto text = cmail::imap::encode_message_item(*item, message, utf8);
    if (auto* s = std::get_if<std::string>(&text))
      std::cout << "OK " << s->size() << "\n" << *s;
    else
      std::cout << "NO UNKNOWN-CTE\n";
  }
  std::cout.flush();
  return std::cout ? 0 : 1;
}
