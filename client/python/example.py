#!/usr/bin/python3
"""gemserve_client example: classify an image, then stream a generation.

    PYTHONPATH=build/client/python /usr/bin/python3 client/python/example.py \
        --server 127.0.0.1:50051 [--image examples/ankle-boot.png] [--prompt "And God said"]

Without PYTHONPATH it takes the package from $GEMSERVE_BUILD_DIR/client/python (default:
build/client/python), where the build assembles it.
"""
import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if not (HERE / "gemserve_client" / "_proto").is_dir():
    # Run from the source tree (client/python/): the gemserve_client next to this script has
    # no generated modules and would shadow the built one on PYTHONPATH; the build tree's
    # is the fallback.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path += [str(Path(os.environ.get("GEMSERVE_BUILD_DIR", REPO / "build")) / "client" / "python")]

try:
    import gemserve_client
except ImportError as error:
    sys.exit(f"example.py: {error}\n(put <build>/client/python on PYTHONPATH)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="gem-server HOST:PORT")
    parser.add_argument("--image", default=str(REPO / "examples" / "ankle-boot.png"))
    parser.add_argument("--prompt", default="And God said")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--tls-ca", help="TLS: the CA that signed the server's certificate")
    parser.add_argument("--inference-token", default=os.environ.get("GEMSERVE_INFERENCE_TOKEN"),
                        help="Inference bearer token (default: $GEMSERVE_INFERENCE_TOKEN)")
    parser.add_argument("--timeout", type=float, default=30, help="deadline per call, seconds")
    args = parser.parse_args()

    with gemserve_client.Client(args.server, root_certificates=args.tls_ca,
                                inference_token=args.inference_token,
                                timeout=args.timeout) as client:
        try:
            result = client.classify(args.image, model="resnet20-fashion", top_k=3)
            print(f"{Path(args.image).name}: {result.model}/{result.variant} "
                  f"(request_id {result.request_id})")
            for p in result.predictions:
                print(f"  {p.probability:.4f}  {p.index}  {p.label}")

            generation = client.generate(args.prompt, model="gpt2-kjv",
                                         max_new_tokens=args.max_tokens)
            print(args.prompt, end="", flush=True)
            for piece in generation:
                print(piece, end="", flush=True)
            summary = generation.summary
            print(f"\n[{summary.variant}: {summary.finish_reason}, {summary.prompt_tokens} prompt"
                  f" + {summary.completion_tokens} new tokens, request_id {summary.request_id}]")
        except gemserve_client.GemserveError as error:
            print(f"example.py: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
