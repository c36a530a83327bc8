#include "client/text_table.h"

#include <algorithm>

namespace gemserve::client {
namespace {

// Display width of UTF-8 text: one column per character (the tables hold no wide ones).
size_t Width(const std::string& text) {
  size_t width = 0;
  for (const char c : text) width += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return width;
}

}  // namespace

TextTable::TextTable(std::vector<std::string> headers) {
  for (std::string& header : headers) {
    const bool right = !header.empty() && header[0] == '>';
    right_.push_back(right);
    headers_.push_back(right ? header.substr(1) : header);
  }
}

void TextTable::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void TextTable::Print(std::ostream& out, const std::string& indent) const {
  std::vector<size_t> widths;
  for (const std::string& header : headers_) widths.push_back(Width(header));
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  }
  PrintLine(out, indent, headers_, widths);
  for (const auto& row : rows_) PrintLine(out, indent, row, widths);
}

void TextTable::PrintLine(std::ostream& out, const std::string& indent,
                          const std::vector<std::string>& cells,
                          const std::vector<size_t>& widths) const {
  std::string line = indent;
  for (size_t i = 0; i < cells.size(); ++i) {
    const std::string padding(widths[i] - Width(cells[i]), ' ');
    if (i > 0) line += "  ";
    line += right_[i] ? padding + cells[i] : cells[i] + padding;
  }
  line.erase(line.find_last_not_of(' ') + 1);
  out << line << "\n";
}

}  // namespace gemserve::client
