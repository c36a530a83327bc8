#pragma once

// The split argument of `gem-client split`: "gelu=50,gem-n1=50".

#include <cstdint>
#include <map>
#include <string>

namespace gemserve::client {

// Parses comma-separated VARIANT=WEIGHT pieces into variant -> weight. A weight is a
// whole number from 0 to 4294967295; spaces around a piece are ignored; a variant may
// appear once. Whether the weights make sense (known variants, not all zero) is the
// server's call. On success fills `split` and returns true; otherwise returns false
// and `error` names the bad piece.
bool ParseTrafficSplit(const std::string& text, std::map<std::string, uint32_t>* split,
                       std::string* error);

}  // namespace gemserve::client
