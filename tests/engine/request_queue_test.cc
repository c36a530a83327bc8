// The bounded batch queue: capacity, batch sizes, waiting for a batch to fill, close.

#include <gtest/gtest.h>

#include <thread>

#include "server/engine/request_queue.h"

namespace gemserve {
namespace {

TEST(RequestQueue, RefusesPushesBeyondCapacity) {
  RequestQueue<int> queue(2);
  int a = 1, b = 2, c = 3;
  EXPECT_TRUE(queue.Push(a));
  EXPECT_TRUE(queue.Push(b));
  EXPECT_FALSE(queue.Push(c));
  EXPECT_EQ(c, 3);
  EXPECT_EQ(queue.size(), 2u);
}

TEST(RequestQueue, PopsBatchesOldestFirst) {
  RequestQueue<int> queue(10);
  for (int i = 0; i < 5; ++i) {
    int item = i;
    queue.Push(item);
  }
  EXPECT_EQ(queue.PopBatch(3, std::chrono::microseconds(0)), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(queue.TryPopBatch(8), (std::vector<int>{3, 4}));
  EXPECT_TRUE(queue.TryPopBatch(8).empty());
}

TEST(RequestQueue, WaitsForABatchToFillUntilItIsFull) {
  RequestQueue<int> queue(10);
  int first = 1;
  queue.Push(first);
  std::thread producer([&] {
    for (int i = 2; i <= 4; ++i) {
      int item = i;
      queue.Push(item);
    }
  });
  // A generous delay: the batch is returned as soon as it holds 4 items.
  const std::vector<int> batch = queue.PopBatch(4, std::chrono::seconds(60));
  producer.join();
  EXPECT_EQ(batch.size(), 4u);
}

TEST(RequestQueue, CloseWakesWaitersAndRefusesPushes) {
  RequestQueue<int> queue(10);
  std::thread closer([&] { queue.Close(); });
  EXPECT_TRUE(queue.PopBatch(4, std::chrono::microseconds(0)).empty());
  closer.join();
  int item = 1;
  EXPECT_FALSE(queue.Push(item));
}

}  // namespace
}  // namespace gemserve
