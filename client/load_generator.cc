#include "client/load_generator.h"

#include <grpcpp/grpcpp.h>

#include <cmath>
#include <condition_variable>
#include <iomanip>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client/bench_calls.h"
#include "client/bench_report.h"
#include "client/bench_stats.h"
#include "client/cli_common.h"
#include "gemserve/v1/inference.grpc.pb.h"

namespace gemserve::client {
namespace {

using Clock = BenchClock;
using v1::Inference;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// The state of one run, shared by the driver (RunBench's thread), the progress printer and
// gRPC's callback threads, under one mutex. Owns the calls in flight.
class LoadRun final : public CallSink {
 public:
  struct Progress {
    uint64_t successes = 0;
    uint64_t errors = 0;
    size_t in_flight = 0;
  };

  LoadRun(Clock::time_point start, size_t max_in_flight)
      : start_(start), max_in_flight_(max_in_flight) {}

  // Driver: blocks until fewer than max_in_flight calls are in flight and returns true,
  // unless `until` passes first (or has passed) or the run gives up.
  bool WaitForSlot(Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_until(lock, until, [&] { return GiveUpLocked() || HasSlotLocked(); });
    return !gave_up_ && HasSlotLocked() && Clock::now() < until;
  }

  // Driver: blocks until `until` passes or the run gives up.
  void SleepUntil(Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_until(lock, until, [&] { return GiveUpLocked(); });
  }

  // Driver: registers and starts `call`.
  void Launch(std::unique_ptr<BenchCall> call) {
    // The deleter runs after the call is destroyed, wherever its last reference goes.
    std::shared_ptr<BenchCall> shared(call.release(), [this](BenchCall* c) {
      delete c;
      Released();
    });
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_flight_.emplace(shared.get(), shared);
      ++alive_;
    }
    shared->Start();  // may finish inline: Finished takes the lock itself
  }

  // Driver: blocks until nothing is in flight (true) or `until` passes or the run gives up.
  bool WaitIdle(Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_until(lock, until, [&] { return in_flight_.empty() || gave_up_; }) &&
           in_flight_.empty();
  }

  // Driver, once at the end: cancels every call in flight and waits until every call has
  // finished and is destroyed. Returns how many finished cancelled.
  uint64_t CancelAndWait() {
    std::vector<std::shared_ptr<BenchCall>> calls;  // keep them alive while cancelling
    {
      std::lock_guard<std::mutex> lock(mutex_);
      cancelling_ = true;
      for (const auto& entry : in_flight_) calls.push_back(entry.second);
    }
    // Not under the lock: gRPC may finish a call inline in TryCancel.
    for (const auto& call : calls) call->Cancel();
    calls.clear();
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return alive_ == 0; });
    return unfinished_;
  }

  // Any thread. Also applies the give-up rule, which depends on the time.
  Progress Snapshot() {
    std::lock_guard<std::mutex> lock(mutex_);
    GiveUpLocked();
    return {samples_.size(), errors_.total(), in_flight_.size()};
  }

  bool gave_up() {
    std::lock_guard<std::mutex> lock(mutex_);
    return gave_up_;
  }

  // After CancelAndWait.
  const std::vector<RequestSample>& samples() const { return samples_; }
  const ErrorTally& errors() const { return errors_; }

  void Finished(BenchCall* call, CallResult result) override {
    decltype(in_flight_)::node_type done;  // declared first: the call is destroyed unlocked
    std::lock_guard<std::mutex> lock(mutex_);
    done = in_flight_.extract(call);
    const grpc::Status& status = result.status;
    if (status.ok()) {
      samples_.push_back(std::move(result.sample));
    } else if (cancelling_ && status.error_code() == grpc::StatusCode::CANCELLED) {
      ++unfinished_;
    } else {
      const std::string code = StatusCodeName(status.error_code());
      if (errors_.Add(code, status.error_message(), result.sample.latency_ms)) {
        std::cerr << "gem-client: first " << code << " error: " << status.error_message()
                  << "\n";
      }
      GiveUpLocked();
    }
    changed_.notify_all();
  }

 private:
  bool HasSlotLocked() const { return in_flight_.size() < max_in_flight_; }

  // Latches gave_up_ once ShouldGiveUp holds; wakes the driver then.
  bool GiveUpLocked() {
    if (!gave_up_ && !cancelling_ &&
        ShouldGiveUp(samples_.size(), errors_.total(), SecondsBetween(start_, Clock::now()))) {
      gave_up_ = true;
      changed_.notify_all();
    }
    return gave_up_;
  }

  void Released() {
    std::lock_guard<std::mutex> lock(mutex_);
    --alive_;
    changed_.notify_all();
  }

  const Clock::time_point start_;
  const size_t max_in_flight_;
  std::mutex mutex_;
  std::condition_variable changed_;  // a call finished or was destroyed, or gave_up_ was set
  std::unordered_map<BenchCall*, std::shared_ptr<BenchCall>> in_flight_;
  size_t alive_ = 0;  // calls not yet destroyed, in flight or not
  bool cancelling_ = false;
  bool gave_up_ = false;
  uint64_t unfinished_ = 0;
  std::vector<RequestSample> samples_;  // the successes
  ErrorTally errors_;
};

// Prints LoadRun's progress on stderr once a second, from its own thread, until stopped.
class ProgressPrinter {
 public:
  ProgressPrinter(LoadRun* run, Clock::time_point start, double total_s)
      : run_(run), start_(start), total_s_(total_s), thread_([this] { Loop(); }) {}
  ~ProgressPrinter() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    stopped_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    uint64_t last_successes = 0;
    Clock::time_point last = start_;
    std::unique_lock<std::mutex> lock(mutex_);
    for (Clock::time_point tick = start_ + std::chrono::seconds(1);
         !stopped_.wait_until(lock, tick, [&] { return stop_; });
         tick += std::chrono::seconds(1)) {
      const Clock::time_point now = Clock::now();
      const LoadRun::Progress p = run_->Snapshot();
      const double rate = static_cast<double>(p.successes - last_successes) /
                          std::max(SecondsBetween(last, now), 1e-3);
      std::cerr << ProgressLine(SecondsBetween(start_, now), total_s_, p.successes, p.errors,
                                rate, p.in_flight)
                << "\n";
      last_successes = p.successes;
      last = now;
    }
  }

  LoadRun* const run_;
  const Clock::time_point start_;
  const double total_s_;
  std::mutex mutex_;
  std::condition_variable stopped_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is set
};

// Closed loop: a new request whenever one of `concurrency` slots is free, until `end`.
void DriveClosedLoop(LoadRun& run, const CallFactory& factory, Clock::time_point end) {
  for (uint64_t i = 0; run.WaitForSlot(end); ++i) run.Launch(factory.Make(i, Clock::now(), &run));
}

// Open loop: Poisson arrivals from `start` for `duration_s`, each sent at its time or, at
// the in-flight bound, as soon as a call finishes. Fills info's scheduled, unsent and
// send_lag_ms.
void DriveOpenLoop(LoadRun& run, const CallFactory& factory, const BenchArgs& args,
                   Clock::time_point start, double duration_s, BenchRun* info) {
  PoissonArrivals arrivals(args.rate, args.seed);
  const Clock::time_point end = start + Seconds(duration_s);
  double t = arrivals.Next();
  for (; t < duration_s; t = arrivals.Next()) {
    const Clock::time_point at = start + Seconds(t);
    run.SleepUntil(at);
    if (run.gave_up()) return;
    if (!run.WaitForSlot(end)) break;  // the end came (the client was behind), or gave up
    info->send_lag_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - at).count());
    run.Launch(factory.Make(info->scheduled++, at, &run));
  }
  if (run.gave_up()) return;
  if (t >= duration_s) {  // every arrival was sent; the run still lasts duration_s
    run.SleepUntil(end);
    return;
  }
  // The end came while the client was behind, at the bound or short of CPU: the arrivals
  // left were not sent.
  for (; t < duration_s; t = arrivals.Next()) {
    ++info->scheduled;
    ++info->unsent;
  }
}

// Checks what can be checked before connecting. Prints the problem and returns false.
bool ValidArgs(const BenchArgs& args, double* duration_s, double* drain_s) {
  if (!ParseDuration(args.duration, duration_s)) {
    UsageError("--duration must look like 500ms, 10s or 1m, and be at most 1440m");
    return false;
  }
  if (!ParseDuration(args.drain, drain_s)) {
    UsageError("--drain must look like 500ms, 10s or 1m, and be at most 1440m");
    return false;
  }
  const bool valid_rate = std::isfinite(args.rate) && args.rate > 0 && args.rate <= kMaxBenchRate;
  if (args.rate != 0 && !valid_rate) {
    UsageError("--rate must be a number of requests per second, > 0 and at most 1e6");
    return false;
  }
  if (args.concurrency < 1 || args.max_in_flight < 1) {
    UsageError("--concurrency and --max-in-flight must be at least 1");
    return false;
  }
  return true;
}

// The model's task from ListModels ("classify" or "generate"). Prints why and returns ""
// when the server cannot be reached or has no such model.
std::string ModelTask(Inference::Stub& stub, const std::string& server, const std::string& model) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListModelsResponse response;
  const grpc::Status status = stub.ListModels(&context, {}, &response);
  if (!status.ok()) {
    std::cerr << "gem-client: cannot list the models of " << server << ": "
              << StatusCodeName(status.error_code()) << ": " << status.error_message() << "\n";
    return "";
  }
  std::string names;
  for (const auto& m : response.models()) {
    if (m.name() == model) return m.task();
    names += (names.empty() ? "" : ", ") + m.name();
  }
  std::cerr << "gem-client: " << server << " has no model \"" << model << "\" (it has: "
            << (names.empty() ? "none" : names) << ")\n";
  return "";
}

}  // namespace

int RunBench(const std::shared_ptr<grpc::Channel>& channel, const std::string& server,
             const BenchArgs& args) {
  double duration_s = 0, drain_s = 0;
  if (!ValidArgs(args, &duration_s, &drain_s)) return kExitUsage;
  auto stub = Inference::NewStub(channel);
  const std::string task = ModelTask(*stub, server, args.model);
  if (task.empty()) return kExitServerError;
  const bool generate = task == "generate";

  std::unique_ptr<CallFactory> factory;
  if (generate) {
    v1::GenerateRequest request;
    request.set_model(args.model);
    request.set_variant(args.variant);
    request.set_prompt(args.prompt);
    request.set_max_new_tokens(args.max_tokens);
    factory = std::make_unique<CallFactory>(
        CallFactory::ForGenerate(stub.get(), std::move(request), args.routing_keys));
  } else {
    v1::ClassifyRequest request;
    if (args.image.empty() || !ReadFileBytes(args.image, request.mutable_image())) {
      return UsageError("bench on a classify model needs --image FILE (readable)");
    }
    request.set_model(args.model);
    request.set_variant(args.variant);
    factory = std::make_unique<CallFactory>(
        CallFactory::ForClassify(stub.get(), std::move(request), args.routing_keys));
  }

  BenchRun info;
  info.rpc = generate ? "Generate" : "Classify";
  info.open_loop = args.rate > 0;
  info.concurrency = args.concurrency;
  info.rate = args.rate;
  info.seed = args.seed;
  info.max_in_flight = args.max_in_flight;
  info.duration_s = duration_s;
  info.routing_keys = args.routing_keys;

  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + Seconds(duration_s);
  LoadRun run(start, static_cast<size_t>(info.open_loop ? args.max_in_flight : args.concurrency));
  ProgressPrinter progress(&run, start, duration_s);
  if (info.open_loop) {
    DriveOpenLoop(run, *factory, args, start, duration_s, &info);
  } else {
    DriveClosedLoop(run, *factory, end);
  }
  if (!run.gave_up()) run.WaitIdle(end + Seconds(drain_s));
  info.unfinished = run.CancelAndWait();
  info.wall_s = SecondsBetween(start, Clock::now());
  progress.Stop();
  info.stopped_early = run.gave_up();

  const nlohmann::json report = BenchReportJson(info, run.samples(), run.errors());
  if (args.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintBenchReport(report, std::cout);
  }
  if (info.stopped_early) {
    std::cerr << "gem-client: bench stopped after " << std::fixed << std::setprecision(2)
              << info.wall_s << std::defaultfloat << " s: every request failed ("
              << run.errors().Describe() << ")";
    for (const auto& [code, message] : run.errors().first_messages()) {
      std::cerr << "; " << code << ": " << message;
    }
    std::cerr << "\n";
    return kExitServerError;
  }
  if (run.samples().empty()) {
    std::cerr << "gem-client: no request succeeded\n";
    return kExitServerError;
  }
  return kExitOk;
}

}  // namespace gemserve::client
