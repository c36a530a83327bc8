#pragma once

// Runs Engine::Reload for Admin.ReloadModels and SIGHUP on a thread of its own, one
// reload at a time, off the gRPC threads; after each, publishes what follows from the
// set of ready variants: gemserve_model_info and the health service (the server and
// gemserve.v1.Inference SERVING while any variant is ready; "MODEL/VARIANT" per variant,
// NOT_SERVING once it failed or was removed).
//
// Requests that arrive while a reload runs share the next one: it starts after they
// arrived, so each sees the repository as it was when it asked, or later.

#include <grpcpp/health_check_service_interface.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/engine.h"
#include "server/metrics/metrics.h"

namespace gemserve {

// True when any variant of any of `models` is ready.
bool AnyVariantReady(const std::vector<ModelState>& models);

class ModelReloader {
 public:
  using Done = std::function<void(StatusOr<ReloadReport>)>;

  // At most this many requests wait for the next reload; more: ResourceExhausted.
  static constexpr size_t kMaxWaiting = 64;

  // `engine` and `metrics` must outlive the reloader. Publishes gemserve_model_info.
  ModelReloader(Engine* engine, Metrics* metrics);
  ~ModelReloader();  // Stop()

  // The health service to keep in line (once the gRPC server exists); publishes it now.
  void PublishHealthTo(grpc::HealthCheckServiceInterface* health);

  // Queues a reload; `done` runs once, on the reloader's thread (at once on the caller's
  // when refused: ResourceExhausted with kMaxWaiting waiting, Unavailable after Stop).
  void Request(Done done);

  // Lets the running reload finish, answers those waiting with Unavailable, joins.
  void Stop();

 private:
  void Loop();
  void Publish();
  void PublishHealth(const std::vector<ModelState>& models);  // under publish_mutex_

  Engine* engine_;
  Metrics* metrics_;
  std::mutex publish_mutex_;
  grpc::HealthCheckServiceInterface* health_ = nullptr;  // guarded by publish_mutex_
  std::set<std::string> health_names_;                   // published "MODEL/VARIANT"s

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Done> waiting_;  // guarded by mutex_
  bool stopping_ = false;      // guarded by mutex_
  std::thread thread_;
};

}  // namespace gemserve
