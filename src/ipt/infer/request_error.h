#pragma once
// A request the client got wrong (or one the server cannot take now): an HTTP status and the
// fields of OpenAI's error body. Thrown by the protocol parsing, the session store and the slots,
// answered by the HTTP layer; nothing here needs HTTP.
#include <string>
#include <utility>

namespace ipt::infer {

struct RequestError {
  int status;
  std::string message, param, code, type = "invalid_request_error";
};

[[noreturn]] inline void reject(std::string message, std::string param = "", std::string code = "", int status = 400) {
  throw RequestError{status, std::move(message), std::move(param), std::move(code)};
}

}  // namespace ipt::infer
