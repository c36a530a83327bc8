"""Client: the Inference, Admin and Health services of one gem-server over one channel."""
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from . import _stubs
from .errors import from_rpc_error
from .types import (ClassifyResult, CompareResult, FeedbackResult, GenerateSummary,
                    ModelInfo, PairAgreement, Timing, VariantInfo, VariantResult, _predictions)

pb = _stubs.inference_pb2

PathOrBytes = Union[str, "os.PathLike[str]", bytes]


def _read(what: str, value: Optional[PathOrBytes]) -> Optional[bytes]:
    """bytes as they are; a path: the file's content."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (str, os.PathLike)):
        with open(value, "rb") as f:
            return f.read()
    raise TypeError(f"{what}: a path or bytes, not {type(value).__name__}")


def _image_input(image: Any) -> Dict[str, Any]:
    """The `input` oneof of Classify/Compare: encoded bytes, a path to a PNG/JPEG, or an
    array (numpy or anything with .shape that numpy.asarray takes) of pixels in [0, 1],
    shape [C,H,W] or [1,C,H,W] (uint8 arrays are scaled by 1/255)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return {"image": bytes(image)}
    if isinstance(image, (str, os.PathLike)):
        return {"image": _read("image", image)}
    if hasattr(image, "shape"):
        import numpy as np
        array = np.asarray(image)
        scale = 1 / 255 if array.dtype == np.uint8 else 1
        data = (array.astype(np.float32) * np.float32(scale)).ravel()
        return {"tensor": pb.Tensor(shape=[int(d) for d in array.shape], data=data.tolist())}
    raise TypeError("image: PNG/JPEG bytes, a path to one, or an array of pixels, not "
                    + type(image).__name__)


def _timing(message) -> Timing:
    return Timing._from_proto(message.timing)


class Generation:
    """A Generate stream. Iterating yields the new text pieces (str) as the server sends
    them; once the stream has ended, `summary` holds the finish reason, token counts,
    request id and timing (None before). `result()` reads the rest and returns the summary;
    `cancel()` (or leaving a `with` block early) stops the generation on the server.
    A failed call raises its GemserveError from the iteration (or from result())."""

    def __init__(self, call, model: str):
        self._call = call
        self._model = model
        self._pieces: List[str] = []
        self._token_ids: List[int] = []
        self._last = None
        self._summary: Optional[GenerateSummary] = None
        self._done = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while not self._done:
            try:
                message = next(self._call)
            except StopIteration:
                self._finish()
                break
            except grpc.RpcError as error:
                self._done = True
                raise from_rpc_error(error, "Generate") from error
            self._last = message
            self._token_ids.extend(message.token_ids)
            if message.text:
                self._pieces.append(message.text)
                return message.text
        raise StopIteration

    def _finish(self) -> None:
        self._done = True
        last = self._last if self._last is not None else pb.GenerateResponse()
        self._summary = GenerateSummary(
            model=self._model, variant=last.variant, text="".join(self._pieces),
            token_ids=tuple(self._token_ids),
            finish_reason=pb.FinishReason.Name(last.finish_reason),
            prompt_tokens=last.usage.prompt_tokens,
            completion_tokens=last.usage.completion_tokens, request_id=last.request_id,
            experiment_version=last.experiment_version, timing=_timing(last))

    def result(self) -> GenerateSummary:
        """Reads the stream to its end; the summary."""
        for _ in self:
            pass
        assert self._summary is not None
        return self._summary

    @property
    def summary(self) -> Optional[GenerateSummary]:
        return self._summary

    @property
    def done(self) -> bool:
        return self._done

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._pieces)

    @property
    def token_ids(self) -> Tuple[int, ...]:
        """The token ids received so far."""
        return tuple(self._token_ids)

    @property
    def variant(self) -> str:
        """The serving variant, once the first message has arrived ("" before)."""
        return self._last.variant if self._last is not None else ""

    def cancel(self) -> None:
        if not self._done:
            self._call.cancel()
            self._done = True

    def __enter__(self) -> "Generation":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


class Client:
    """A gem-server client.

    address: HOST:PORT. TLS when root_certificates (the CA that signed the server's
    certificate; path or PEM bytes) is given or tls=True (system roots); mutual TLS with
    certificate_chain and private_key (paths or PEM bytes) as well. server_name overrides
    the name checked against the server's certificate. inference_token / admin_token: sent
    as "authorization: Bearer <token>" on Inference / Admin calls (auth.*_token_file).
    timeout: the default deadline of every call in seconds (a call's timeout= overrides it;
    for generate it covers the whole stream). options: extra grpc channel options.
    Failed calls raise a GemserveError subclass (gemserve_client.errors)."""

    def __init__(self, address: str = "127.0.0.1:50051", *,
                 root_certificates: Optional[PathOrBytes] = None,
                 certificate_chain: Optional[PathOrBytes] = None,
                 private_key: Optional[PathOrBytes] = None,
                 tls: Optional[bool] = None, server_name: Optional[str] = None,
                 inference_token: Optional[str] = None, admin_token: Optional[str] = None,
                 timeout: float = 30.0,
                 options: Sequence[Tuple[str, Any]] = ()):
        if timeout is None or timeout <= 0:
            raise ValueError("timeout: a positive number of seconds")
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("certificate_chain and private_key go together")
        self.address = address
        self.timeout = float(timeout)
        channel_options = list(options)
        if server_name:
            channel_options.append(("grpc.ssl_target_name_override", server_name))
        if tls is None:
            tls = root_certificates is not None or certificate_chain is not None
        if tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read("root_certificates", root_certificates),
                private_key=_read("private_key", private_key),
                certificate_chain=_read("certificate_chain", certificate_chain))
            self._channel = grpc.secure_channel(address, credentials, options=channel_options)
        else:
            if certificate_chain is not None or root_certificates is not None:
                raise ValueError("certificates given with tls=False")
            self._channel = grpc.insecure_channel(address, options=channel_options)
        # Metadata rather than call credentials: those are not sent on plaintext channels.
        self._inference_metadata = (("authorization", "Bearer " + inference_token),) \
            if inference_token else None
        self._admin_metadata = (("authorization", "Bearer " + admin_token),) \
            if admin_token else None
        self._inference = _stubs.inference_pb2_grpc.InferenceStub(self._channel)
        self._admin = _stubs.inference_pb2_grpc.AdminStub(self._channel)
        self._health = _stubs.health_pb2_grpc.HealthStub(self._channel)

    # ------------------------------------------------------------------ plumbing

    def _deadline(self, timeout: Optional[float]) -> float:
        seconds = self.timeout if timeout is None else float(timeout)
        if seconds <= 0:
            raise ValueError("timeout: a positive number of seconds")
        return seconds

    def _call(self, rpc: str, method, request, timeout, metadata):
        try:
            return method(request, timeout=self._deadline(timeout), metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, rpc) from error

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    # ------------------------------------------------------------------ Inference

    def classify(self, image: Any, *, model: str, variant: Optional[str] = None,
                 routing_key: Optional[str] = None, top_k: int = 0,
                 timeout: Optional[float] = None) -> ClassifyResult:
        """Classifies one image: PNG/JPEG bytes, a path to such a file, or an array of
        pixels in [0, 1] shaped [C,H,W] or [1,C,H,W]. variant None: the model's experiment
        (sticky by routing_key) or default variant chooses. top_k 0: the server's default
        (5, or every class when fewer)."""
        request = pb.ClassifyRequest(model=model, variant=variant or "",
                                     routing_key=routing_key or "", top_k=top_k,
                                     **_image_input(image))
        response = self._call("Classify", self._inference.Classify, request, timeout,
                              self._inference_metadata)
        return ClassifyResult(model=response.model, variant=response.variant,
                              predictions=_predictions(response.predictions),
                              request_id=response.request_id,
                              experiment_version=response.experiment_version,
                              timing=_timing(response))

    def generate(self, prompt: str, *, model: str, variant: Optional[str] = None,
                 routing_key: Optional[str] = None, max_new_tokens: int = 0,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 0.0, seed: int = 0,
                 stop: Iterable[str] = (), timeout: Optional[float] = None) -> Generation:
        """Streams a continuation of prompt: a Generation, which yields the text pieces.
        max_new_tokens 0: the server's default; temperature 0: greedy; top_k 0 and top_p
        0 or 1: off; the same seed gives the same text; generation stops before any of
        the stop strings. timeout: the deadline of the whole stream."""
        if isinstance(stop, str):
            stop = [stop]
        request = pb.GenerateRequest(model=model, variant=variant or "",
                                     routing_key=routing_key or "", prompt=prompt,
                                     max_new_tokens=max_new_tokens, temperature=temperature,
                                     top_k=top_k, top_p=top_p, seed=seed, stop=list(stop))
        call = self._inference.Generate(request, timeout=self._deadline(timeout),
                                        metadata=self._inference_metadata)
        return Generation(call, model)

    def compare(self, *, model: str, image: Any = None, prompt: Optional[str] = None,
                variants: Optional[Iterable[str]] = None, top_k: int = 0,
                max_new_tokens: int = 0, timeout: Optional[float] = None) -> CompareResult:
        """Runs one input through several variants (None: every loaded one): image= for a
        classify model (as for classify), prompt= for a generate model (greedy)."""
        if (image is None) == (prompt is None):
            raise ValueError("compare needs exactly one of image= and prompt=")
        inputs = {"prompt": prompt} if prompt is not None else _image_input(image)
        request = pb.CompareRequest(model=model, variants=list(variants or ()), top_k=top_k,
                                    max_new_tokens=max_new_tokens, **inputs)
        response = self._call("Compare", self._inference.Compare, request, timeout,
                              self._inference_metadata)
        return CompareResult(
            model=response.model,
            results=tuple(VariantResult(variant=r.variant, predictions=_predictions(r.predictions),
                                        text=r.text, token_ids=tuple(r.token_ids),
                                        timing=_timing(r))
                          for r in response.results),
            agreement=response.agreement,
            pairs=tuple(PairAgreement(p.a, p.b, p.agree, p.common_prefix)
                        for p in response.pairs))

    def feedback(self, request: Union[str, ClassifyResult, GenerateSummary], *,
                 label: Optional[int] = None, reward: Optional[float] = None,
                 timeout: Optional[float] = None) -> FeedbackResult:
        """Reports the true outcome of an earlier request (its request id, or the result
        of classify / the summary of generate): label, the true class of a classify, or
        reward in [0, 1]. NotFound: unknown or expired id; AlreadyExists: already given."""
        request_id = request if isinstance(request, str) else request.request_id
        if (label is None) == (reward is None):
            raise ValueError("feedback needs exactly one of label= and reward=")
        outcome = {"label": int(label)} if label is not None else {"reward": float(reward)}
        response = self._call("Feedback", self._inference.Feedback,
                              pb.FeedbackRequest(request_id=request_id, **outcome), timeout,
                              self._inference_metadata)
        return FeedbackResult(response.model, response.variant, response.correct)

    def models(self, *, timeout: Optional[float] = None) -> List[ModelInfo]:
        """The models the server has, with their variants."""
        response = self._call("ListModels", self._inference.ListModels, pb.ListModelsRequest(),
                              timeout, self._inference_metadata)
        return [ModelInfo(name=m.name, task=m.task, default_variant=m.default_variant,
                          variants=tuple(VariantInfo(v.name, v.state, v.error, v.activation,
                                                     v.n, v.eps, v.neg_slope, v.quality)
                                         for v in m.variants))
                for m in response.models]

    # ------------------------------------------------------------------ Health

    def health(self, service: str = "", *, timeout: Optional[float] = None) -> str:
        """The grpc.health.v1 status of the server (service "") or of one service:
        "SERVING", "NOT_SERVING", ... (NotFound for a service the server does not know).
        Sent without a token: the server keeps health open for probes."""
        health_pb2 = _stubs.health_pb2
        response = self._call("Check", self._health.Check,
                              health_pb2.HealthCheckRequest(service=service), timeout, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # ------------------------------------------------------------------ Admin
    # These return the protobuf messages themselves (gemserve_client.proto).

    def set_traffic_split(self, model: str, split: Mapping[str, int], *,
                          timeout: Optional[float] = None):
        """Sets a model's experiment weights (variant -> weight): the Experiment now in force."""
        request = pb.SetTrafficSplitRequest(model=model, split=dict(split))
        return self._call("SetTrafficSplit", self._admin.SetTrafficSplit, request, timeout,
                          self._admin_metadata)

    def experiments(self, model: str = "", *, timeout: Optional[float] = None):
        """Every experiment (or one model's) with its statistics: ExperimentStatistics list."""
        response = self._call("GetExperiments", self._admin.GetExperiments,
                              pb.GetExperimentsRequest(model=model), timeout,
                              self._admin_metadata)
        return list(response.experiments)

    def reload_models(self, *, timeout: Optional[float] = None):
        """Reloads the model repository: the ReloadModelsResponse (what happened to each variant)."""
        return self._call("ReloadModels", self._admin.ReloadModels, pb.ReloadModelsRequest(),
                          timeout, self._admin_metadata)
