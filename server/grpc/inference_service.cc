#include "server/grpc/inference_service.h"

#include <grpc/support/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <queue>

#include "server/grpc/bearer_token.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/raw_message.h"

namespace gemserve {
namespace {

grpc::StatusCode ToGrpcCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return grpc::StatusCode::OK;
    case StatusCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case StatusCode::kAlreadyExists: return grpc::StatusCode::ALREADY_EXISTS;
    case StatusCode::kFailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case StatusCode::kResourceExhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case StatusCode::kDeadlineExceeded: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case StatusCode::kCancelled: return grpc::StatusCode::CANCELLED;
    case StatusCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case StatusCode::kInternal: return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}


// The time the client left the call, cut to `deadlines.max_deadline`; the default when
// it set none. Computed on gRPC's own time type, which saturates, so that the largest
// legal timeouts cannot overflow into the past.
std::chrono::milliseconds TimeLeft(const grpc::CallbackServerContext& call,
                                   const DeadlinePolicy& deadlines) {
  const gpr_timespec deadline = gpr_convert_clock_type(call.raw_deadline(), GPR_CLOCK_MONOTONIC);
  if (gpr_time_cmp(deadline, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0) {
    return deadlines.default_deadline;
  }
  const int64_t left = gpr_time_to_millis(gpr_time_sub(deadline, gpr_now(GPR_CLOCK_MONOTONIC)));
  return std::clamp(std::chrono::milliseconds(left), std::chrono::milliseconds(0),
                    deadlines.max_deadline);
}

// The engine's view of a call: arrival now, its deadline on the steady clock, and the
// service's shutdown flag.
RequestContext MakeRequestContext(const grpc::CallbackServerContext& call,
                                  const DeadlinePolicy& deadlines, const ShutdownGate& gate) {
  RequestContext context;
  context.deadline = context.arrival + TimeLeft(call, deadlines);
  context.aborted = gate.aborted();
  return context;
}

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE,
                                 "gem-server is shutting down; retry on another replica");

void FillTiming(const Timing& timing, v1::Timing* out) {
  out->set_queue_us(timing.queue_us);
  out->set_inference_us(timing.inference_us);
  out->set_total_us(timing.total_us);
}

// The tensor or image of a Classify or Compare request.
template <typename Request>
ClassifyInput ImageInput(const Request& request) {
  ClassifyInput input;
  if (request.has_tensor()) {
    input.pixels = PixelTensor{{request.tensor().shape().begin(), request.tensor().shape().end()},
                               {request.tensor().data().begin(), request.tensor().data().end()}};
  } else if (request.input_case() == Request::kImage) {
    input.encoded_image = request.image();
  }
  return input;
}

void FillPredictions(const std::vector<Prediction>& predictions,
                     google::protobuf::RepeatedPtrField<v1::Prediction>* out) {
  for (const Prediction& p : predictions) {
    v1::Prediction* prediction = out->Add();
    prediction->set_index(p.index);
    prediction->set_label(p.label);
    prediction->set_probability(p.probability);
  }
}

void FillCompare(const CompareResult& result, v1::CompareResponse* response) {
  for (const VariantOutput& output : result.results) {
    v1::VariantResult* out = response->add_results();
    out->set_variant(output.variant);
    FillPredictions(output.predictions, out->mutable_predictions());
    out->set_text(output.text);
    out->mutable_token_ids()->Add(output.token_ids.begin(), output.token_ids.end());
    FillTiming(output.timing, out->mutable_timing());
  }
  for (const PairAgreement& pair : result.pairs) {
    v1::PairAgreement* out = response->add_pairs();
    out->set_a(pair.a);
    out->set_b(pair.b);
    out->set_agree(pair.agree);
    out->set_common_prefix(pair.common_prefix);
  }
  response->set_agreement(result.agreement);
}

// One RPC's passage through the service: admitted by the shutdown gate (or not), and
// counted in the metrics when it finishes (requests_total, duration, in-flight).
class RpcRecord {
 public:
  RpcRecord(Metrics* metrics, const char* rpc, ShutdownGate* gate)
      : metrics_(metrics), rpc_(rpc), gate_(gate), admitted_(gate->Enter()),
        inflight_(metrics->Inflight(rpc)) {}

  // False once the service shuts down: answer kShuttingDown.
  bool admitted() const { return admitted_; }

  void SetVariant(const VariantKey& key) { key_ = key; }

  // Exactly once.
  void Finish(const grpc::Status& status) {
    metrics_->RecordRequest(rpc_, key_.model, key_.variant, CodeName(status.error_code()),
                            SecondsBetween(start_, Clock::now()));
    if (admitted_) gate_->Leave();
  }

 private:
  Metrics* metrics_;
  const char* rpc_;
  ShutdownGate* gate_;
  const bool admitted_;
  InflightGuard inflight_;
  VariantKey key_;
  Clock::time_point start_ = Clock::now();
};

// The reactor of one unary RPC. The RPC is recorded (metrics, and leaving the shutdown
// gate) in OnDone, once its status and response went out or the call was cancelled: the
// gate is idle only when nothing is left to send, so DrainAndStop can close the server
// then without cutting off an answer still on its way. A call cancelled before its status
// went out (by its client, its deadline or the server's shutdown) is recorded as the
// client saw it: CANCELLED, or DEADLINE_EXCEEDED once its deadline has passed. Such a
// call may reach its handler with no request bytes, which would otherwise count as an
// empty request's error. Deletes itself in OnDone.
class RecordedUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  RecordedUnaryReactor(grpc::CallbackServerContext* context, Metrics* metrics, const char* rpc,
                       ShutdownGate* gate)
      : context_(context), record_(metrics, rpc, gate) {}

  RpcRecord& record() { return record_; }

  // Exactly once.
  void FinishWith(const grpc::Status& status) {
    status_ = status;
    Finish(status);
  }

  void OnCancel() override { cancelled_ = true; }

  void OnDone() override {
    record_.Finish(cancelled_ ? AsTheClientSawIt() : status_);
    delete this;
  }

 private:
  grpc::Status AsTheClientSawIt() const {
    if (context_->deadline() <= std::chrono::system_clock::now()) {
      return {grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"};
    }
    return {grpc::StatusCode::CANCELLED, "cancelled"};
  }

  grpc::CallbackServerContext* context_;
  RpcRecord record_;
  grpc::Status status_;
  std::atomic<bool> cancelled_{false};
};

// One unary RPC taken raw: parses the request, checks the shutdown gate, and finishes
// once with a status, serializing the response when OK. Held by shared_ptr in the
// callbacks that finish it.
template <typename Request, typename Response>
class UnaryCall {
 public:
  UnaryCall(grpc::CallbackServerContext* context, grpc::ByteBuffer* raw_response,
            Metrics* metrics, const char* rpc, ShutdownGate* gate)
      : context_(context), reactor_(new RecordedUnaryReactor(context, metrics, rpc, gate)),
        raw_response_(raw_response) {}

  // False (and the call finished) when the call lacks `token`, the request does not
  // parse or the server is shutting down.
  bool Begin(const grpc::ByteBuffer& raw_request, const std::string& token) {
    if (grpc::Status allowed = CheckBearerToken(*context_, token, "Inference"); !allowed.ok()) {
      Finish(allowed);
    } else if (!ParseRaw(raw_request, &request_)) {
      Finish(Unparseable<Request>());
    } else if (!reactor_->record().admitted()) {
      Finish(kShuttingDown);
    } else {
      return true;
    }
    return false;
  }

  // Exactly once, last: the reactor may be gone once its OnDone ran.
  void Finish(const grpc::Status& status) {
    if (status.ok()) SerializeRaw(response_, raw_response_);
    reactor_->FinishWith(status);
  }

  const Request& request() const { return request_; }
  Response* response() { return &response_; }
  RpcRecord& record() { return reactor_->record(); }
  // What the method handler returns; gRPC runs its OnDone only after that.
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  grpc::CallbackServerContext* context_;
  RecordedUnaryReactor* reactor_;
  grpc::ByteBuffer* raw_response_;
  Request request_;
  Response response_;
};

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return v1::LENGTH;
    case FinishReason::kStop: return v1::STOP;
    case FinishReason::kEos: return v1::EOS;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

// Streams one Generate: the engine's worker pushes chunks (never blocking); this
// reactor writes them one at a time and finishes after the last chunk or an error.
// The engine calls exactly one terminal callback, so the reactor outlives every call
// into it; OnDone frees it.
class GenerateReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  GenerateReactor(Engine* engine, Metrics* metrics, ShutdownGate* gate,
                  grpc::CallbackServerContext* call, const grpc::ByteBuffer& raw_request,
                  const DeadlinePolicy& deadlines, const std::string& token)
      : record_(metrics, "Generate", gate), context_(MakeRequestContext(*call, deadlines, *gate)) {
    v1::GenerateRequest request;
    if (grpc::Status allowed = CheckBearerToken(*call, token, "Inference"); !allowed.ok()) {
      FinishNow(allowed);
    } else if (!ParseRaw(raw_request, &request)) {
      FinishNow(Unparseable<v1::GenerateRequest>());
    } else if (!record_.admitted()) {
      FinishNow(kShuttingDown);
    } else {
      Start(engine, request);
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mutex_);
    writing_ = false;
    if (!ok) {  // the client is gone: stop generating, drop what is queued
      context_.cancelled->store(true);
      pending_ = {};
    }
    WriteNextLocked();
  }

  void OnCancel() override { context_.cancelled->store(true); }

  void OnDone() override {
    record_.Finish(final_status_);
    delete this;
  }

 private:
  void Start(Engine* engine, const v1::GenerateRequest& request) {
    StatusOr<Routing> routing = engine->Route(request.model(), request.variant(),
                                              request.routing_key(), Task::kGenerate);
    if (!routing.ok()) return FinishNow(ToGrpcStatus(routing.status()));
    record_.SetVariant(routing->key);
    variant_ = routing->key.variant;
    GenerateParams params;
    params.prompt = request.prompt();
    params.max_new_tokens = request.max_new_tokens();
    params.sampling = {request.temperature(), request.top_k(), request.top_p(), request.seed()};
    params.stop.assign(request.stop().begin(), request.stop().end());
    const Status queued = engine->Generate(
        routing.value(), std::move(params), context_,
        {[this](GenerateChunk chunk) { Push(std::move(chunk)); },
         [this](Status error) { PushError(ToGrpcStatus(error)); }});
    if (!queued.ok()) FinishNow(ToGrpcStatus(queued));
  }

  void FinishNow(const grpc::Status& status) {
    final_status_ = status;
    Finish(status);
  }

  void Push(GenerateChunk chunk) {
    v1::GenerateResponse message;
    message.set_text(std::move(chunk.text));
    message.mutable_token_ids()->Add(chunk.token_ids.begin(), chunk.token_ids.end());
    message.set_variant(variant_);
    if (chunk.finish) {
      message.set_finish_reason(ToProto(*chunk.finish));
      message.mutable_usage()->set_prompt_tokens(chunk.prompt_tokens);
      message.mutable_usage()->set_completion_tokens(chunk.completion_tokens);
      FillTiming(chunk.timing, message.mutable_timing());
      message.set_request_id(std::move(chunk.request_id));
      message.set_experiment_version(chunk.experiment_version);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push(std::move(message));
    if (chunk.finish) done_ = true;
    WriteNextLocked();
  }

  void PushError(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    error_ = status;
    pending_ = {};
    WriteNextLocked();
  }

  void WriteNextLocked() {
    if (writing_ || finished_) return;
    if (!pending_.empty()) {
      SerializeRaw(pending_.front(), &current_);
      pending_.pop();
      writing_ = true;
      StartWrite(&current_);
    } else if (done_) {
      finished_ = true;
      final_status_ = error_;
      Finish(error_);
    }
  }

  RpcRecord record_;
  RequestContext context_;
  std::string variant_;
  std::mutex mutex_;
  std::queue<v1::GenerateResponse> pending_;
  grpc::ByteBuffer current_;      // the message being written
  bool writing_ = false;
  bool done_ = false;             // the engine sent its last chunk or an error
  bool finished_ = false;
  grpc::Status error_ = grpc::Status::OK;
  grpc::Status final_status_ = grpc::Status::OK;
};

}  // namespace

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "UNKNOWN";
  }
}

grpc::Status ToGrpcStatus(const Status& status) {
  return {ToGrpcCode(status.code()), status.message()};
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* raw_request,
                                                     grpc::ByteBuffer* raw_response) {
  using Call = UnaryCall<v1::ClassifyRequest, v1::ClassifyResponse>;
  auto call = std::make_shared<Call>(context, raw_response, metrics_, "Classify", &gate_);
  if (!call->Begin(*raw_request, token_)) return call->reactor();
  const v1::ClassifyRequest& request = call->request();
  StatusOr<Routing> routing = engine_->Route(request.model(), request.variant(),
                                              request.routing_key(), Task::kClassify);
  if (!routing.ok()) {
    call->Finish(ToGrpcStatus(routing.status()));
    return call->reactor();
  }
  call->record().SetVariant(routing->key);
  engine_->Classify(
      routing.value(), ImageInput(request), request.top_k(),
      MakeRequestContext(*context, deadlines_, gate_),
      [call, key = routing->key](StatusOr<ClassifyResult> result) {
        if (!result.ok()) return call->Finish(ToGrpcStatus(result.status()));
        v1::ClassifyResponse* response = call->response();
        response->set_model(key.model);
        response->set_variant(key.variant);
        FillPredictions(result->predictions, response->mutable_predictions());
        FillTiming(result->timing, response->mutable_timing());
        response->set_request_id(std::move(result->request_id));
        response->set_experiment_version(result->experiment_version);
        call->Finish(grpc::Status::OK);
      });
  return call->reactor();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  return new GenerateReactor(engine_, metrics_, &gate_, context, *raw_request, deadlines_, token_);
}

grpc::ServerUnaryReactor* InferenceService::Compare(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* raw_request,
                                                    grpc::ByteBuffer* raw_response) {
  using Call = UnaryCall<v1::CompareRequest, v1::CompareResponse>;
  auto call = std::make_shared<Call>(context, raw_response, metrics_, "Compare", &gate_);
  if (!call->Begin(*raw_request, token_)) return call->reactor();
  const v1::CompareRequest& request = call->request();
  CompareInput input;
  if (request.input_case() == v1::CompareRequest::kPrompt) {
    input.prompt = request.prompt();
  } else {
    input.image = ImageInput(request);
  }
  input.top_k = request.top_k();
  input.max_new_tokens = request.max_new_tokens();
  engine_->Compare(request.model(), {request.variants().begin(), request.variants().end()},
                   std::move(input), MakeRequestContext(*context, deadlines_, gate_),
                   [call](StatusOr<CompareResult> result) {
                     if (result.ok()) {
                       const std::string& model = call->request().model();
                       call->record().SetVariant({model, ""});  // a known model: a registry name
                       call->response()->set_model(model);
                       FillCompare(result.value(), call->response());
                     }
                     call->Finish(ToGrpcStatus(result.status()));
                   });
  return call->reactor();
}

grpc::ServerUnaryReactor* InferenceService::Feedback(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* raw_request,
                                                     grpc::ByteBuffer* raw_response) {
  UnaryCall<v1::FeedbackRequest, v1::FeedbackResponse> call(context, raw_response, metrics_,
                                                            "Feedback", &gate_);
  if (!call.Begin(*raw_request, token_)) return call.reactor();
  const v1::FeedbackRequest& request = call.request();
  FeedbackOutcome outcome;
  if (request.outcome_case() == v1::FeedbackRequest::kLabel) outcome.label = request.label();
  if (request.outcome_case() == v1::FeedbackRequest::kReward) outcome.reward = request.reward();
  StatusOr<FeedbackResult> result = engine_->Feedback(request.request_id(), outcome);
  if (result.ok()) {
    call.record().SetVariant(result->key);
    call.response()->set_model(result->key.model);
    call.response()->set_variant(result->key.variant);
    call.response()->set_correct(result->correct);
  }
  call.Finish(ToGrpcStatus(result.status()));
  return call.reactor();
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* raw_request,
                                                       grpc::ByteBuffer* raw_response) {
  UnaryCall<v1::ListModelsRequest, v1::ListModelsResponse> call(context, raw_response, metrics_,
                                                                "ListModels", &gate_);
  if (!call.Begin(*raw_request, token_)) return call.reactor();
  *call.response() = ToProto(engine_->Models());
  call.Finish(grpc::Status::OK);
  return call.reactor();
}

}  // namespace gemserve
