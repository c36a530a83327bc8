"""Server reflection as a client with no .proto files uses it (grpcurl, `buf curl`,
Postman): list the services over v1 and v1alpha, fetch each one's file descriptors, build
a descriptor pool from nothing but those, and call Health with messages made from it;
bad requests answered on the stream, and open streams that hold no server thread.

The reflection messages are compiled at test time from Debian's grpc-proto package, under
a module name of their own (a generated `grpc` package would shadow grpcio)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import gemserve_testing as gt

GRPC_PROTOS = Path("/usr/share/grpc-proto")
REFLECTION_PROTO = "grpc/reflection/v1/reflection.proto"
# v1alpha's messages are the same as v1's, field for field: one set of classes serves both.
METHODS = {
    "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}
SERVED = {"gemserve.v1.Inference", "gemserve.v1.Admin", "grpc.health.v1.Health",
          "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.fixture(scope="module")
def reflection_pb2(tmp_path_factory):
    out = tmp_path_factory.mktemp("reflection-pb2")
    subprocess.run(["protoc", f"--python_out={out}", "-I", str(GRPC_PROTOS),
                    str(GRPC_PROTOS / REFLECTION_PROTO)], check=True)
    spec = importlib.util.spec_from_file_location(
        "gemserve_test_reflection_pb2", out / "grpc" / "reflection" / "v1" / "reflection_pb2.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """gem-server with one small variant: reflection does not depend on the models."""
    work = tmp_path_factory.mktemp("reflection")
    repository = gt.demo_subset(work, ["resnet20-fashion/labels.txt", "resnet20-fashion/gem-n1"])
    config = work / "gemserve.yaml"
    config.write_text("models:\n  resnet20-fashion: {default_variant: gem-n1}\n")
    process = gt.Server(config, work / "gem-server.log", model_repository=repository)
    yield process
    process.stop()


class Reflection:
    """One reflection stream: ask() sends a request and returns the server's answer."""

    def __init__(self, address, method, pb2):
        self.pb2 = pb2
        self.channel = grpc.insecure_channel(address)
        call = self.channel.stream_stream(
            method, request_serializer=pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb2.ServerReflectionResponse.FromString)
        self.queue = _RequestQueue()
        self.responses = call(iter(self.queue), timeout=30)

    def ask(self, **field):
        self.queue.put(self.pb2.ServerReflectionRequest(**field))
        return next(self.responses)

    def close(self):
        self.queue.close()
        self.channel.close()


class _RequestQueue:
    """A blocking iterator of requests, so that one stream carries every question."""

    def __init__(self):
        import queue
        self._items = queue.Queue()

    def put(self, item):
        self._items.put(item)

    def close(self):
        self._items.put(None)

    def __iter__(self):
        while (item := self._items.get()) is not None:
            yield item


@pytest.fixture(params=sorted(METHODS))
def stream(request, server, reflection_pb2):
    reflection = Reflection(server.grpc, METHODS[request.param], reflection_pb2)
    yield reflection
    reflection.close()


def pool_from(responses):
    """A descriptor pool made only of the FileDescriptorProtos the server sent."""
    files = {}
    for response in responses:
        for data in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(data)
            files[proto.name] = proto
    pool = descriptor_pool.DescriptorPool()
    added = set()
    while len(added) < len(files):  # each file after its imports
        ready = [name for name, proto in files.items()
                 if name not in added and all(d in added for d in proto.dependency)]
        assert ready, f"imports missing from the answers: {sorted(set(files) - added)}"
        for name in ready:
            pool.Add(files[name])
            added.add(name)
    return pool


def test_every_listed_service_is_described(stream):
    listed = {s.name for s in stream.ask(list_services="").list_services_response.service}
    assert SERVED <= listed
    answers = [stream.ask(file_containing_symbol=name) for name in sorted(listed)]
    for name, answer in zip(sorted(listed), answers):
        assert not answer.HasField("error_response"), (name, answer.error_response)
    pool = pool_from(answers)
    for name in listed:
        service = pool.FindServiceByName(name)
        assert service.methods, name
        for method in service.methods:  # request and response types are in the pool too
            assert pool.FindMessageTypeByName(method.input_type.full_name)
            assert pool.FindMessageTypeByName(method.output_type.full_name)


def test_health_can_be_called_from_reflected_descriptors_alone(server, stream):
    answer = stream.ask(file_containing_symbol="grpc.health.v1.Health")
    check = pool_from([answer]).FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"]
    request_class = message_factory.MessageFactory().GetPrototype(check.input_type)
    response_class = message_factory.MessageFactory().GetPrototype(check.output_type)
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary(f"/grpc.health.v1.Health/{check.name}",
                                   request_serializer=request_class.SerializeToString,
                                   response_deserializer=response_class.FromString)
        response = call(request_class(service=""), timeout=10)
    status = response.DESCRIPTOR.fields_by_name["status"].enum_type
    assert status.values_by_number[response.status].name == "SERVING"


def test_file_by_name_brings_the_file_and_its_imports(stream):
    answer = stream.ask(file_by_filename="gemserve/v1/inference.proto")
    names = [descriptor_pb2.FileDescriptorProto.FromString(data).name
             for data in answer.file_descriptor_response.file_descriptor_proto]
    assert names[0] == "gemserve/v1/inference.proto"
    imports = descriptor_pb2.FileDescriptorProto.FromString(
        answer.file_descriptor_response.file_descriptor_proto[0]).dependency
    assert set(imports) <= set(names)
    assert pool_from([answer]).FindMessageTypeByName("gemserve.v1.ClassifyRequest")


def test_unknown_names_are_not_found_and_the_stream_goes_on(stream):
    for field, value in [("file_containing_symbol", "no.such.Service"),
                         ("file_by_filename", "no/such.proto"),
                         ("file_containing_symbol", "x" * 100_000)]:
        answer = stream.ask(**{field: value})
        assert answer.error_response.error_code == NOT_FOUND, (field, answer)
        assert len(answer.error_response.error_message) < 300
    extension = stream.pb2.ExtensionRequest(containing_type="gemserve.v1.ClassifyRequest",
                                            extension_number=1000)
    assert stream.ask(file_containing_extension=extension).error_response.error_code == NOT_FOUND
    assert stream.ask(list_services="").list_services_response.service


def test_v1_names_the_field_of_a_bad_request(server, reflection_pb2):
    reflection = Reflection(server.grpc, METHODS["v1"], reflection_pb2)
    try:
        answer = reflection.ask(file_containing_symbol="no.such.Symbol")
        assert "file_containing_symbol" in answer.error_response.error_message
        empty = reflection.ask()
        assert empty.error_response.error_code == INVALID_ARGUMENT
        assert "message_request" in empty.error_response.error_message
        numbers = reflection.ask(all_extension_numbers_of_type="gemserve.v1.ClassifyRequest")
        assert numbers.all_extension_numbers_response.base_type_name == "gemserve.v1.ClassifyRequest"
        assert list(numbers.all_extension_numbers_response.extension_number) == []
        unknown = reflection.ask(all_extension_numbers_of_type="no.Such")
        assert unknown.error_response.error_code == NOT_FOUND
    finally:
        reflection.close()


def test_open_streams_hold_no_threads(server, reflection_pb2):
    """Idle reflection streams cost the server no thread each (gRPC's sync API, which
    libgrpc++_reflection's v1alpha used, holds one per open stream)."""

    def server_threads():
        return len(os.listdir(f"/proc/{server.process.pid}/task"))

    before = server_threads()
    streams = []
    try:
        for i in range(200):
            stream = Reflection(server.grpc, METHODS["v1alpha" if i % 2 else "v1"], reflection_pb2)
            assert stream.ask(list_services="").list_services_response.service
            streams.append(stream)
        assert server_threads() < before + 20, (before, server_threads())
    finally:
        for stream in streams:
            stream.close()
