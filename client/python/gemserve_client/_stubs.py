"""The modules generated from proto/ at build time (see client/python/CMakeLists.txt),
with a clear message when this copy of the package has none (the source tree)."""
try:
    from ._proto.gemserve.v1 import inference_pb2, inference_pb2_grpc
    from ._proto.grpc.health.v1 import health_pb2, health_pb2_grpc
except ModuleNotFoundError as error:  # pragma: no cover - only without a build
    if not (error.name or "").startswith(__package__ + "._proto"):
        raise
    raise ImportError(
        "gemserve_client has no generated protobuf modules here: build the CMake target "
        "gemserve_python_client and import the package from <build>/client/python "
        "(PYTHONPATH=<build>/client/python)") from error

__all__ = ["inference_pb2", "inference_pb2_grpc", "health_pb2", "health_pb2_grpc"]
