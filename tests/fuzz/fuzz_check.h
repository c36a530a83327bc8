#pragma once

// What the fuzz targets assert beyond "no crash": FUZZ_CHECK(condition, message) prints
// where and why, then aborts, which libFuzzer reports as a crash and saves the input
// (as crash-<sha1> under -artifact_prefix). Active whatever NDEBUG says.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/engine/status.h"
#include "server/engine/text/utf8_stream.h"

#define FUZZ_CHECK(condition, message)                                                    \
  do {                                                                                    \
    if (!(condition)) {                                                                   \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__,      \
                   #condition, std::string(message).c_str());                             \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace gemserve::fuzz {

// True when `bytes` is entirely valid UTF-8 (RFC 3629, as ScanUtf8Char reads it).
inline bool IsValidUtf8(std::string_view bytes) {
  while (!bytes.empty()) {
    const Utf8Scan scan = ScanUtf8Char(bytes);
    if (scan.kind != Utf8Scan::kValid) return false;
    bytes.remove_prefix(scan.length);
  }
  return true;
}

// A status for a message: its code and text, for FUZZ_CHECK messages.
inline std::string Describe(const Status& status) {
  return "code " + std::to_string(static_cast<int>(status.code())) + ", message \"" +
         status.message() + "\"";
}

// The status every refusal of bad client input must have: InvalidArgument, with a
// message that starts with `prefix` and says something after it.
inline void CheckRefusal(const Status& status, std::string_view prefix) {
  FUZZ_CHECK(status.code() == StatusCode::kInvalidArgument, Describe(status));
  FUZZ_CHECK(status.message().size() > prefix.size() &&
                 std::string_view(status.message()).substr(0, prefix.size()) == prefix,
             "expected a message starting \"" + std::string(prefix) + "\": " + Describe(status));
}

}  // namespace gemserve::fuzz
