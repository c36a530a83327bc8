#include "server/engine/text/utf8_stream.h"

#include <cstdint>

namespace gemserve {
namespace {

// The length of the character a lead byte starts, and the range its second byte must
// lie in (narrower than 0x80..0xBF after E0, ED, F0 and F4). Length 0: not a lead byte.
struct LeadByte {
  size_t length;
  uint8_t second_min;
  uint8_t second_max;
};

LeadByte classify_lead(uint8_t lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};  // no overlong forms
  if (lead == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};  // no overlong forms
  if (lead == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
  if (lead >= 0xF1 && lead <= 0xF3) return {4, 0x80, 0xBF};
  return {0, 0, 0};
}

}  // namespace

Utf8Scan ScanUtf8Char(std::string_view bytes) {
  const LeadByte lead = classify_lead(static_cast<uint8_t>(bytes[0]));
  if (lead.length == 0) return {Utf8Scan::kInvalid, 1};
  uint8_t min = lead.second_min;
  uint8_t max = lead.second_max;
  for (size_t i = 1; i < lead.length; ++i) {
    if (i == bytes.size()) return {Utf8Scan::kTruncated, i};
    const auto byte = static_cast<uint8_t>(bytes[i]);
    if (byte < min || byte > max) return {Utf8Scan::kInvalid, i};
    min = 0x80;
    max = 0xBF;
  }
  return {Utf8Scan::kValid, lead.length};
}

std::string Utf8StreamDecoder::Feed(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t done = 0;
  while (done < pending_.size()) {
    const Utf8Scan scan = ScanUtf8Char(std::string_view(pending_).substr(done));
    if (scan.kind == Utf8Scan::kTruncated) break;
    if (scan.kind == Utf8Scan::kValid) {
      out.append(pending_, done, scan.length);
    } else {
      out.append(kReplacementCharacter);
    }
    done += scan.length;
  }
  pending_.erase(0, done);
  return out;
}

std::string Utf8StreamDecoder::Flush() {
  const bool incomplete = !pending_.empty();
  pending_.clear();
  return incomplete ? std::string(kReplacementCharacter) : std::string();
}

}  // namespace gemserve
