// The window of recent request ids behind Feedback.

#include <gtest/gtest.h>

#include <set>

#include "server/engine/experiments/feedback_log.h"

namespace gemserve {
namespace {

Status AcceptAll(const ServedRequest&) { return Status::Ok(); }

ServedRequest Served(const std::string& variant) {
  return {{"resnet20-fashion", variant}, Task::kClassify, 3, 10, true};
}

TEST(FeedbackLog, IdsAreUniqueAndShareTheProcessPrefix) {
  FeedbackLog log(100);
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.insert(log.Remember(Served("gelu")));
  EXPECT_EQ(ids.size(), 50u);
  const std::string prefix = ids.begin()->substr(0, 17);
  for (const std::string& id : ids) EXPECT_EQ(id.substr(0, 17), prefix);
  EXPECT_NE(FeedbackLog(1).Remember(Served("gelu")).substr(0, 16), prefix.substr(0, 16));
}

TEST(FeedbackLog, ClaimReturnsTheRequestOnce) {
  FeedbackLog log(10);
  const std::string id = log.Remember(Served("gem-n1"));
  StatusOr<ServedRequest> first = log.Claim(id, AcceptAll);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->key.variant, "gem-n1");
  EXPECT_EQ(first->top1, 3);
  EXPECT_EQ(log.Claim(id, AcceptAll).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(log.Claim("no-such-id", AcceptAll).status().code(), StatusCode::kNotFound);
}

TEST(FeedbackLog, ARejectedOutcomeLeavesTheIdUnclaimed) {
  FeedbackLog log(10);
  const std::string id = log.Remember(Served("gelu"));
  const auto reject = [](const ServedRequest&) { return Status::InvalidArgument("label"); };
  EXPECT_EQ(log.Claim(id, reject).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(log.Claim(id, AcceptAll).ok());
}

TEST(FeedbackLog, TheOldestIdsAreForgottenBeyondTheWindow) {
  FeedbackLog log(3);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(log.Remember(Served("gelu")));
  EXPECT_EQ(log.Claim(ids[0], AcceptAll).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(log.Claim(ids[1], AcceptAll).status().code(), StatusCode::kNotFound);
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(log.Claim(ids[i], AcceptAll).ok());
}

TEST(FeedbackLog, ErrorMessagesQuoteOnlyAShortPrintablePrefix) {
  FeedbackLog log(3);
  const std::string hostile = std::string(1000, 'x') + "\n\x01";
  const std::string message = log.Claim(hostile, AcceptAll).status().message();
  EXPECT_LT(message.size(), 120u);
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace gemserve
