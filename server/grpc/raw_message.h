#pragma once

// gRPC C++ answers a request it cannot parse with UNIMPLEMENTED and an empty message,
// before any handler runs (CallbackUnaryHandler in grpcpp). gemserve's services register
// their methods raw (WithRawCallbackMethod_*) and parse here instead, so that a malformed
// request gets INVALID_ARGUMENT naming the message it should have been.

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <string>

namespace gemserve {

// False when `raw` is not a valid `Message` (malformed bytes, or a string field that is
// not UTF-8).
template <typename Message>
bool ParseRaw(const grpc::ByteBuffer& raw, Message* message) {
  grpc::ByteBuffer copy(raw);  // shares the slices; the reader needs a mutable buffer
  grpc::ProtoBufferReader reader(&copy);
  return message->ParseFromZeroCopyStream(&reader);
}

// The INVALID_ARGUMENT for a request that ParseRaw refused.
template <typename Message>
grpc::Status Unparseable() {
  return {grpc::StatusCode::INVALID_ARGUMENT,
          "the request is not a valid " + Message::descriptor()->full_name() +
              " (malformed protobuf, or a string field that is not UTF-8)"};
}

// Replaces what `raw` held with `message`.
template <typename Message>
void SerializeRaw(const Message& message, grpc::ByteBuffer* raw) {
  raw->Clear();
  bool own_buffer = false;
  grpc::SerializationTraits<Message>::Serialize(message, raw, &own_buffer);
}

}  // namespace gemserve
