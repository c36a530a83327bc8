#include "server/engine/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "server/engine/text/utf8_stream.h"

namespace gemserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Thrown inside this file only, returned as a Status by Tokenizer::Load.
struct LoadError {
  Status status;
};

[[noreturn]] void fail_invalid(const fs::path& path, const std::string& message) {
  throw LoadError{Status::InvalidArgument("tokenizer file '" + path.string() + "': " + message)};
}

std::string in_quotes(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw LoadError{Status::NotFound("cannot open tokenizer file '" + path.string() +
                                     "': " + std::strerror(errno))};
  }
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// GPT-2's bytes_to_unicode(): bytes that are printable characters stand for
// themselves; the others, in byte order, for U+0100, U+0101, ... Each byte's
// character is kept UTF-8 encoded, as it appears in vocab.json and merges.txt.
class ByteCharacters {
 public:
  static const ByteCharacters& Get() {
    static const ByteCharacters table;
    return table;
  }

  const std::string& CharacterOf(uint8_t byte) const { return characters_[byte]; }

  // The byte a character stands for; nullopt for characters outside the table.
  std::optional<uint8_t> ByteOf(std::string_view character) const {
    const auto found = bytes_.find(std::string(character));
    if (found == bytes_.end()) return std::nullopt;
    return found->second;
  }

 private:
  ByteCharacters() {
    char32_t next_stand_in = 0x100;
    for (int byte = 0; byte < 256; ++byte) {
      const bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
                             (byte >= 0xAE && byte <= 0xFF);
      characters_[byte] = utf8_of(printable ? static_cast<char32_t>(byte) : next_stand_in++);
      bytes_[characters_[byte]] = static_cast<uint8_t>(byte);
    }
  }

  // UTF-8 of a code point below U+0800, which is all this table holds.
  static std::string utf8_of(char32_t code_point) {
    if (code_point < 0x80) return std::string(1, static_cast<char>(code_point));
    return {static_cast<char>(0xC0 | (code_point >> 6)),
            static_cast<char>(0x80 | (code_point & 0x3F))};
  }

  std::array<std::string, 256> characters_;
  std::unordered_map<std::string, uint8_t> bytes_;
};

// A token's bytes: each character of its vocab.json spelling stands for one byte.
// Characters outside GPT-2's table (possible in added special tokens) stay as written.
std::string token_bytes_of(std::string_view token) {
  std::string bytes;
  for (size_t i = 0; i < token.size();) {
    const size_t length = ScanUtf8Char(token.substr(i)).length;
    const std::string_view character = token.substr(i, length);
    const std::optional<uint8_t> byte = ByteCharacters::Get().ByteOf(character);
    if (byte) {
      bytes.push_back(static_cast<char>(*byte));
    } else {
      bytes.append(character);
    }
    i += length;
  }
  return bytes;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
}

}  // namespace

struct BpeModel {
  struct Merge {
    int32_t rank;
    int32_t result;  // the id of the merged token
  };

  std::unordered_map<std::string, int32_t> token_ids;  // as written in vocab.json
  std::vector<std::string> token_bytes;                // id -> bytes ("" where no token)
  std::array<int32_t, 256> byte_ids{};                 // byte -> its one-byte token
  std::unordered_map<uint64_t, Merge> merges;          // pair_key(left, right) -> merge

  const Merge* FindMerge(int32_t left, int32_t right) const {
    const auto found = merges.find(pair_key(left, right));
    return found == merges.end() ? nullptr : &found->second;
  }

  std::vector<int32_t> MergeWord(std::string_view word) const;
};

namespace {

std::unordered_map<std::string, int32_t> read_token_ids(const fs::path& path) {
  json vocab;
  try {
    vocab = json::parse(read_file(path));
  } catch (const json::parse_error& error) {
    fail_invalid(path, std::string("not valid JSON: ") + error.what());
  }
  if (!vocab.is_object()) fail_invalid(path, "expected a JSON object mapping tokens to ids");
  std::unordered_map<std::string, int32_t> token_ids;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id < 0 || id > std::numeric_limits<int32_t>::max()) {
      fail_invalid(path, "token " + in_quotes(token) + " has id " + id.dump() +
                             "; ids must be integers in [0, 2^31)");
    }
    token_ids.emplace(token, id.get<int32_t>());
  }
  return token_ids;
}

std::vector<std::string> index_token_bytes(const std::unordered_map<std::string, int32_t>& ids,
                                           const fs::path& path) {
  int32_t max_id = -1;
  for (const auto& [token, id] : ids) max_id = std::max(max_id, id);
  std::vector<const std::string*> owners(max_id + 1, nullptr);
  std::vector<std::string> token_bytes(max_id + 1);
  for (const auto& [token, id] : ids) {
    if (owners[id] != nullptr) {
      fail_invalid(path, "id " + std::to_string(id) + " is used by both " + in_quotes(*owners[id]) +
                             " and " + in_quotes(token));
    }
    owners[id] = &token;
    token_bytes[id] = token_bytes_of(token);
  }
  return token_bytes;
}

std::array<int32_t, 256> find_byte_ids(const std::unordered_map<std::string, int32_t>& ids,
                                       const fs::path& path) {
  std::array<int32_t, 256> byte_ids{};
  for (int byte = 0; byte < 256; ++byte) {
    const std::string& character = ByteCharacters::Get().CharacterOf(static_cast<uint8_t>(byte));
    const auto found = ids.find(character);
    if (found == ids.end()) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", byte);
      fail_invalid(path, std::string("no token for byte ") + hex + " (" + in_quotes(character) +
                             "); a byte-level vocabulary needs all 256");
    }
    byte_ids[byte] = found->second;
  }
  return byte_ids;
}

// Reads merges.txt into `model.merges`. A pair listed twice keeps its last rank, as in
// GPT-2's dict(zip(merges, range(len(merges)))).
void read_merges(const fs::path& path, BpeModel& model) {
  const std::string contents = read_file(path);
  const std::string_view text = contents;
  int32_t rank = 0;
  size_t line_number = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = std::min(text.find('\n', begin), text.size());
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.substr(0, 8) == "#version")) continue;

    const std::string where = "line " + std::to_string(line_number) + ": ";
    const size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      fail_invalid(path,
                   where + "expected two symbols separated by one space, got " + in_quotes(line));
    }
    const auto id_of = [&](std::string_view symbol, const char* what) {
      const auto found = model.token_ids.find(std::string(symbol));
      if (found == model.token_ids.end()) {
        fail_invalid(path, where + what + " " + in_quotes(symbol) + " is not in the vocabulary");
      }
      return found->second;
    };
    const int32_t left = id_of(line.substr(0, space), "symbol");
    const int32_t right = id_of(line.substr(space + 1), "symbol");
    const int32_t result = id_of(
        std::string(line.substr(0, space)) + std::string(line.substr(space + 1)), "merged token");
    model.merges[pair_key(left, right)] = {rank++, result};
  }
}

std::unique_ptr<const BpeModel> load_model(const fs::path& vocab_path,
                                           const fs::path& merges_path) {
  auto model = std::make_unique<BpeModel>();
  model->token_ids = read_token_ids(vocab_path);
  model->token_bytes = index_token_bytes(model->token_ids, vocab_path);
  model->byte_ids = find_byte_ids(model->token_ids, vocab_path);
  read_merges(merges_path, *model);
  return model;
}

}  // namespace

// GPT-2's bpe() loop: take the lowest-ranked adjacent pair, merge each occurrence of
// it left to right (a symbol merged in this round does not merge again in it), repeat
// until no pair has a merge. GPT-2 rescans the word for every round, which is
// quadratic in its length; here the symbols form a linked list and the candidate
// pairs a heap ordered by (rank, position), so a word of n bytes costs O(n log n).
std::vector<int32_t> BpeModel::MergeWord(std::string_view word) const {
  constexpr int32_t kMerged = -1;  // the id of a symbol folded into its left neighbour
  const auto size = static_cast<int32_t>(word.size());
  std::vector<int32_t> ids(size), next(size), previous(size);
  for (int32_t i = 0; i < size; ++i) {
    ids[i] = byte_ids[static_cast<uint8_t>(word[i])];
    next[i] = i + 1;  // == size: none
    previous[i] = i - 1;
  }

  struct Candidate {
    int32_t rank, left, left_id, right_id;
  };
  const auto later = [](const Candidate& a, const Candidate& b) {
    return std::tie(a.rank, a.left) > std::tie(b.rank, b.left);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> candidates(later);
  const auto add_candidate = [&](int32_t left) {
    if (left < 0 || next[left] == size) return;
    if (const Merge* merge = FindMerge(ids[left], ids[next[left]])) {
      candidates.push({merge->rank, left, ids[left], ids[next[left]]});
    }
  };
  const auto is_current = [&](const Candidate& c) {
    return ids[c.left] == c.left_id && next[c.left] != size && ids[next[c.left]] == c.right_id;
  };

  for (int32_t i = 0; i < size; ++i) add_candidate(i);
  while (!candidates.empty()) {
    const int32_t rank = candidates.top().rank;
    std::vector<int32_t> merged;  // the symbols this round merged into
    for (; !candidates.empty() && candidates.top().rank == rank; candidates.pop()) {
      const Candidate& candidate = candidates.top();
      if (!is_current(candidate)) continue;
      const int32_t left = candidate.left;
      const int32_t right = next[left];
      ids[left] = FindMerge(candidate.left_id, candidate.right_id)->result;
      ids[right] = kMerged;
      next[left] = next[right];
      if (next[right] != size) previous[next[right]] = left;
      merged.push_back(left);
    }
    for (const int32_t left : merged) {
      add_candidate(previous[left]);
      add_candidate(left);
    }
  }

  std::vector<int32_t> result;
  for (int32_t i = 0; i < size; i = next[i]) result.push_back(ids[i]);
  return result;
}

// Encoded words by their bytes. Bounded: long words are not kept, and the cache starts
// over when full.
class Tokenizer::WordCache {
 public:
  std::optional<std::vector<int32_t>> Find(std::string_view word) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = words_.find(std::string(word));
    if (found == words_.end()) return std::nullopt;
    return found->second;
  }

  void Insert(std::string_view word, const std::vector<int32_t>& ids) {
    if (word.size() > kMaxWordBytes) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (words_.size() >= kMaxWords) words_.clear();
    words_.emplace(word, ids);
  }

 private:
  static constexpr size_t kMaxWordBytes = 64;
  static constexpr size_t kMaxWords = 1 << 16;

  std::mutex mutex_;
  std::unordered_map<std::string, std::vector<int32_t>> words_;
};

StatusOr<Tokenizer> Tokenizer::Load(const fs::path& vocab_path, const fs::path& merges_path) {
  StatusOr<Pretokenizer> pretokenizer = Pretokenizer::Create();
  if (!pretokenizer.ok()) return pretokenizer.status();
  try {
    return Tokenizer(std::move(pretokenizer).value(), load_model(vocab_path, merges_path));
  } catch (const LoadError& error) {
    return error.status;
  }
}

Tokenizer::Tokenizer(Pretokenizer pretokenizer, std::unique_ptr<const BpeModel> model)
    : pretokenizer_(std::move(pretokenizer)),
      model_(std::move(model)),
      cache_(std::make_unique<WordCache>()) {
  for (const std::string& bytes : model_->token_bytes) {
    longest_token_bytes_ = std::max(longest_token_bytes_, bytes.size());
  }
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  for (const std::string_view word : pretokenizer_.Split(text)) {
    const std::vector<int32_t> word_ids = EncodeWord(word);
    ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  }
  return ids;
}

std::vector<int32_t> Tokenizer::EncodeWord(std::string_view word) const {
  if (std::optional<std::vector<int32_t>> cached = cache_->Find(word)) return *std::move(cached);
  std::vector<int32_t> ids = model_->MergeWord(word);
  cache_->Insert(word, ids);
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (id >= 0 && id < vocab_size()) bytes.append(model_->token_bytes[id]);
  }
  return bytes;
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  return id >= 0 && id < vocab_size() ? model_->token_bytes[id] : std::string();
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(model_->token_bytes.size()); }

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const {
  const auto found = model_->token_ids.find(std::string(token));
  if (found == model_->token_ids.end()) return std::nullopt;
  return found->second;
}

}  // namespace gemserve
