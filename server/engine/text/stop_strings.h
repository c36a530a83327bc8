#pragma once

// Stop strings for streamed generation, with the semantics of TGI, vLLM and the OpenAI
// API: generation ends as soon as the generated text contains a stop string, and the
// stop string itself is not part of the output.

#include <string>
#include <string_view>
#include <vector>

namespace gemserve {

// Filters the generated text as it is decoded. Text that could be the beginning of a
// stop string is held back until the next pieces show whether it is one; everything
// else is released at once. Only generated text is searched, never the prompt.
//
// Stop strings and fed text are expected to be valid UTF-8 (as gRPC strings are);
// released text then always ends on a character boundary.
//
// Not thread-safe: one matcher per request.
class StopStringMatcher {
 public:
  // Empty stop strings are ignored; with none left, all text is released at once.
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  struct Output {
    std::string text;      // safe to send now
    bool stopped = false;  // a stop string was reached: `text` ends just before it
  };

  // Adds the next decoded piece of generated text. When the text fed so far contains a
  // stop string, returns `stopped` with the text cut before the earliest-starting one it
  // contains. A longer stop string that began earlier but is not complete yet does not
  // count: generation ends with the first piece that completes any stop string (for
  // stops {"\n", "In\nthe"}, pieces "In", "\n" stop with "In"). Once `stopped` has
  // been returned, generation is over and further calls return empty, stopped output.
  Output Feed(std::string_view text);

  // Ends generation for another reason (length, EOS, cancel): returns the text held
  // back, which turned out not to start a stop string; "" after a stop.
  std::string Flush();

 private:
  // The length of the longest suffix of pending_ that is a proper prefix of a stop
  // string.
  size_t HeldBackLength() const;

  std::vector<std::string> stop_strings_;
  std::string pending_;  // fed but not yet released
  bool stopped_ = false;
};

}  // namespace gemserve
