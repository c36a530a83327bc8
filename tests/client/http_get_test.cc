#include "client/http_get.h"

#include <gtest/gtest.h>

namespace gemserve::client {
namespace {

TEST(SplitUrl, SeparatesOriginAndPath) {
  std::string origin, path;
  ASSERT_TRUE(SplitUrl("http://127.0.0.1:9464/metrics", &origin, &path));
  EXPECT_EQ(origin, "http://127.0.0.1:9464");
  EXPECT_EQ(path, "/metrics");
  ASSERT_TRUE(SplitUrl("https://host/a/b?x=1", &origin, &path));
  EXPECT_EQ(origin, "https://host");
  EXPECT_EQ(path, "/a/b?x=1");
  ASSERT_TRUE(SplitUrl("http://host:80", &origin, &path));
  EXPECT_EQ(origin, "http://host:80");
  EXPECT_EQ(path, "/");
}

TEST(SplitUrl, RejectsWhatIsNotHttp) {
  std::string origin, path;
  EXPECT_FALSE(SplitUrl("127.0.0.1:9464/metrics", &origin, &path));
  EXPECT_FALSE(SplitUrl("ftp://host/metrics", &origin, &path));
  EXPECT_FALSE(SplitUrl("http:///metrics", &origin, &path));
}

}  // namespace
}  // namespace gemserve::client
