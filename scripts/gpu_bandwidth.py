"""GB/s of the fused GEM op, torch GELU and a device-to-device copy on the GPU.

Counts bytes read plus bytes written; best of 50 timed runs with CUDA events after a
warm-up. Used by scripts/gpu-check.sh."""
import argparse

import torch

from gemmodels import ops


def best_seconds(fn, runs=50):
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    ops.load()
    count = args.mib * (1 << 20) // 4
    x = torch.randn(count, device="cuda") * 3
    out = torch.empty_like(x)
    moved = 2 * x.numel() * x.element_size()
    results = {
        "fused gem-n1": best_seconds(lambda: torch.ops.gem.gem(x, 1, 1.0, 0.0)),
        "fused segem-n1-e1e-4": best_seconds(lambda: torch.ops.gem.gem(x, 1, 1e-4, 0.01)),
        "fused gem-n1 in place": best_seconds(lambda: torch.ops.gem.gem_(out, 1, 1.0, 0.0)),
        "torch gelu": best_seconds(lambda: torch.nn.functional.gelu(x)),
        "device-to-device copy": best_seconds(lambda: out.copy_(x)),
    }
    copy = moved / results["device-to-device copy"] / 1e9
    print(f"GPU: {torch.cuda.get_device_name()}, {args.mib} MiB float32, best of 50")
    for name, seconds in results.items():
        gbps = moved / seconds / 1e9
        print(f"  {name:24s} {gbps:8.1f} GB/s  ({gbps / copy:.2f}x copy)")


if __name__ == "__main__":
    main()
