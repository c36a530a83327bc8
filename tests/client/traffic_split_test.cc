#include "client/traffic_split.h"

#include <gtest/gtest.h>

namespace gemserve::client {
namespace {

using Split = std::map<std::string, uint32_t>;

TEST(ParseTrafficSplit, ReadsVariantsAndWeights) {
  Split split;
  std::string error;
  ASSERT_TRUE(ParseTrafficSplit("gelu=50,gem-n1=50", &split, &error)) << error;
  EXPECT_EQ(split, (Split{{"gelu", 50}, {"gem-n1", 50}}));
}

TEST(ParseTrafficSplit, IgnoresSpacesAndAcceptsZeroAndLargeWeights) {
  Split split;
  std::string error;
  ASSERT_TRUE(ParseTrafficSplit(" gelu = 0 , segem-n1-e1e-4=4294967295", &split, &error)) << error;
  EXPECT_EQ(split, (Split{{"gelu", 0}, {"segem-n1-e1e-4", 4294967295u}}));
}

// The error for `text`, which must be rejected.
std::string ErrorFor(const std::string& text) {
  Split split;
  std::string error;
  EXPECT_FALSE(ParseTrafficSplit(text, &split, &error)) << text;
  return error;
}

TEST(ParseTrafficSplit, NamesTheBadPiece) {
  EXPECT_NE(ErrorFor("gelu=50,gem-n1").find("\"gem-n1\""), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=50,=50").find("\"=50\""), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=-5").find("\"gelu=-5\""), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=half").find("\"gelu=half\""), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=").find("\"gelu=\""), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=4294967296").find("whole number"), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=1.5").find("\"gelu=1.5\""), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=1,gelu=2").find("twice"), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=1,,gem-n1=1").find("empty piece"), std::string::npos);
  EXPECT_NE(ErrorFor("gelu=1,").find("ends with ','"), std::string::npos);
  EXPECT_NE(ErrorFor("").find("empty"), std::string::npos);
}

}  // namespace
}  // namespace gemserve::client
