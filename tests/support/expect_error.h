#pragma once
// expect_error(f, fragment): f must throw ipt::Error whose message contains `fragment` (errors name
// what was wrong; the tests check that they do).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "ipt/common/error.h"

namespace ipt::test {

inline void expect_error(const std::function<void()>& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

}  // namespace ipt::test
