#pragma once

// UTF-8 for streamed text: a scanner for one character and an incremental decoder
// that turns token bytes into pieces of valid UTF-8 without splitting a character.

#include <cstddef>
#include <string>
#include <string_view>

namespace gemserve {

// U+FFFD REPLACEMENT CHARACTER, UTF-8 encoded.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// What starts a non-empty byte string, by RFC 3629 (no overlong forms, no
// surrogates, nothing above U+10FFFF).
struct Utf8Scan {
  enum Kind {
    kValid,      // a complete character of `length` bytes
    kTruncated,  // all `length` bytes (the whole input) begin a character that needs more
    kInvalid,    // `length` bytes (the maximal ill-formed subpart, at least 1) are invalid
  };
  Kind kind;
  size_t length;
};

// Scans the character at the start of `bytes`, which must not be empty.
// Replacing each kInvalid subpart by one U+FFFD is the Unicode and WHATWG
// "maximal subpart" practice.
Utf8Scan ScanUtf8Char(std::string_view bytes);

// Turns a stream of bytes (e.g. the bytes of generated tokens) into pieces of valid
// UTF-8: every piece ends on a character boundary, so no character is ever split
// between two pieces. A trailing incomplete character is held back until the bytes
// that complete it arrive; invalid bytes become U+FFFD as soon as they are known to
// be invalid. The concatenation of all pieces, Flush() included, equals the input
// when the input is valid UTF-8.
//
// Not thread-safe: one decoder per stream.
class Utf8StreamDecoder {
 public:
  // Appends `bytes` and returns the longest decodable prefix of what has not been
  // returned yet (possibly empty).
  std::string Feed(std::string_view bytes);

  // Ends the stream: returns U+FFFD if an incomplete character was held back, else
  // "". The decoder is then empty and may start a new stream.
  std::string Flush();

 private:
  std::string pending_;  // bytes of an incomplete trailing character
};

}  // namespace gemserve
