#include "client/text_table.h"

#include <gtest/gtest.h>

#include <sstream>

namespace gemserve::client {
namespace {

TEST(TextTable, PadsColumnsToTheWidestCell) {
  TextTable table({"variant", ">requests", "note"});
  table.AddRow({"gelu", "5", "–"});
  table.AddRow({"segem-n1-e1e-4", "1200"});
  std::ostringstream out;
  table.Print(out, "  ");
  EXPECT_EQ(out.str(),
            "  variant         requests  note\n"
            "  gelu                   5  –\n"
            "  segem-n1-e1e-4      1200\n");
}

}  // namespace
}  // namespace gemserve::client
