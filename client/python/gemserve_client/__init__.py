"""gemserve_client: a Python client for gemserve (grpcio + protobuf).

    from gemserve_client import Client, NotFound
    with Client("127.0.0.1:50051") as client:
        result = client.classify("examples/ankle-boot.png", model="resnet20-fashion")
        print(result.variant, result.top.label, result.top.probability)
        for piece in client.generate("And God said", model="gpt2-kjv", max_new_tokens=20):
            print(piece, end="", flush=True)

The protobuf and gRPC modules are generated at build time (gemserve_client._proto);
gemserve_client.proto is gemserve/v1/inference.proto's message module.
"""
from ._stubs import inference_pb2 as proto
from .client import Client, Generation
from .errors import (Aborted, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded,
                     FailedPrecondition, GemserveError, Internal, InvalidArgument, NotFound,
                     OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated,
                     Unavailable, Unimplemented, Unknown)
from .types import (ClassifyResult, CompareResult, FeedbackResult, GenerateSummary, ModelInfo,
                    PairAgreement, Prediction, Timing, VariantInfo, VariantResult)

__version__ = "0.1.0"

__all__ = [
    "Client", "Generation", "proto",
    "ClassifyResult", "CompareResult", "FeedbackResult", "GenerateSummary", "ModelInfo",
    "PairAgreement", "Prediction", "Timing", "VariantInfo", "VariantResult",
    "GemserveError", "Aborted", "AlreadyExists", "Cancelled", "DataLoss", "DeadlineExceeded",
    "FailedPrecondition", "Internal", "InvalidArgument", "NotFound", "OutOfRange",
    "PermissionDenied", "ResourceExhausted", "Unauthenticated", "Unavailable", "Unimplemented",
    "Unknown",
]
