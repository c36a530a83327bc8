#include "tests/integration/generate_stream.h"

#include <thread>

namespace gemserve::testing {

const v1::GenerateResponse& Generated::last() const {
  static const v1::GenerateResponse kNone;
  return messages.empty() ? kNone : messages.back();
}

Generated Generate(v1::Inference::Stub& stub, const v1::GenerateRequest& request) {
  grpc::ClientContext context;
  auto reader = stub.Generate(&context, request);
  Generated out;
  v1::GenerateResponse message;
  while (reader->Read(&message)) {
    out.messages.push_back(message);
    out.ids.insert(out.ids.end(), message.token_ids().begin(), message.token_ids().end());
    out.text += message.text();
  }
  out.status = reader->Finish();
  return out;
}

AloneAndTogether GenerateAloneThenTogether(v1::Inference::Stub& stub,
                                           const std::vector<v1::GenerateRequest>& requests) {
  AloneAndTogether out;
  for (const auto& request : requests) out.alone.push_back(Generate(stub, request));
  out.together.resize(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] { out.together[i] = Generate(stub, requests[i]); });
  }
  for (auto& client : clients) client.join();
  return out;
}

}  // namespace gemserve::testing
