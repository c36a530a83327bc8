#include "client/traffic_split.h"

#include <cctype>
#include <limits>
#include <sstream>

namespace gemserve::client {
namespace {

std::string Trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  const size_t last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

bool ParseWeight(const std::string& text, uint32_t* weight) {
  if (text.empty() || text.size() > 10) return false;
  uint64_t value = 0;
  for (const char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > std::numeric_limits<uint32_t>::max()) return false;
  *weight = static_cast<uint32_t>(value);
  return true;
}

// One VARIANT=WEIGHT piece; `error` says what is wrong with it.
bool ParsePiece(const std::string& piece, std::string* variant, uint32_t* weight,
                std::string* error) {
  if (piece.empty()) {
    *error = "an empty piece between two commas";
    return false;
  }
  const size_t equals = piece.find('=');
  if (equals == std::string::npos) {
    *error = "\"" + piece + "\" is not VARIANT=WEIGHT";
    return false;
  }
  *variant = Trim(piece.substr(0, equals));
  if (variant->empty()) {
    *error = "\"" + piece + "\" has no variant name";
    return false;
  }
  if (!ParseWeight(Trim(piece.substr(equals + 1)), weight)) {
    *error = "\"" + piece + "\": the weight must be a whole number from 0 to 4294967295";
    return false;
  }
  return true;
}

}  // namespace

bool ParseTrafficSplit(const std::string& text, std::map<std::string, uint32_t>* split,
                       std::string* error) {
  if (Trim(text).empty()) {
    *error = "the split is empty; write it like gelu=50,gem-n1=50";
    return false;
  }
  std::istringstream in(text);
  std::string piece;
  while (std::getline(in, piece, ',')) {
    piece = Trim(piece);
    std::string variant;
    uint32_t weight = 0;
    if (!ParsePiece(piece, &variant, &weight, error)) return false;
    if (!split->emplace(variant, weight).second) {
      *error = "\"" + piece + "\": variant " + variant + " appears twice";
      return false;
    }
  }
  if (!text.empty() && Trim(text).back() == ',') {
    *error = "the split ends with ','; write it like gelu=50,gem-n1=50";
    return false;
  }
  return true;
}

}  // namespace gemserve::client
