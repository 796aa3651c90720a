// One HTTP/1.1 GET on the engine kernel: see cmail/http/client.h.
#include <cmail/http/client.h>

namespace cmail::http {

Client::Client(ClientOptions options)
    : proto::Conversation(proto::LineEnd::CrLfOrLf, 64 * 1024), options_(std::move(options)), parser_(options_.limits) {
  std::vector<Field> fields = {{"Host", options_.host}, {"Connection", "close"}};  // RFC 9110 7.2, RFC 9112 9.6
  fields.insert(fields.end(), options_.fields.begin(), options_.fields.end());
  write(format_request("GET", options_.target, fields));
}

void Client::receive(std::string_view bytes) {
  if (finished_ || !accept_input(bytes)) return;
  parser_.feed(in_.pending());
  in_.consume(in_.size());
  if (parser_.state() == ResponseParser::State::Done || parser_.state() == ResponseParser::State::Error) finish();
}

void Client::receive_eof() {
  if (finished_) return;
  parser_.eof();
  finish();
}

void Client::timed_out() {
  if (finished_) return;
  response_.error = "timed out waiting for the response";
  finished_ = true;
  close();
}

void Client::finish() {
  finished_ = true;
  response_.ok = parser_.done();
  if (response_.ok) {
    response_.status = parser_.status();
    response_.fields = parser_.fields();
    response_.body = parser_.body();
  } else {
    response_.error = parser_.error();
  }
  close();
}

}  // namespace cmail::http
