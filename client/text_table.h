#pragma once

// A plain-text table for the terminal: columns padded to their widest cell.

#include <ostream>
#include <string>
#include <vector>

namespace gemserve::client {

class TextTable {
 public:
  // `headers` names the columns; a header starting with '>' is right-aligned (the '>'
  // is not printed), the others are left-aligned.
  explicit TextTable(std::vector<std::string> headers);

  // Adds a row; missing cells are blank, extra cells are dropped.
  void AddRow(std::vector<std::string> cells);

  bool empty() const { return rows_.empty(); }

  // Prints the header and the rows, each line starting with `indent`.
  void Print(std::ostream& out, const std::string& indent = "") const;

 private:
  void PrintLine(std::ostream& out, const std::string& indent,
                 const std::vector<std::string>& cells, const std::vector<size_t>& widths) const;

  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace gemserve::client
