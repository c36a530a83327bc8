#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

Run by hand (the corpora are committed; `make fuzz` needs only them):

    /usr/bin/python3 tests/fuzz/make_seeds.py

Needs python3-pil, python3-protobuf and protoc (protobuf-compiler). Every seed is small
(the largest a 28x28 float tensor request, 3.2 KB). Regression inputs found by fuzzing
are added next to these by hand, named regression-<what>, and this script leaves
them alone.
"""

import io
import os
import struct
import subprocess
import sys
import tempfile
import zlib

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, name), "wb") as out:
        out.write(data)


# --- images -------------------------------------------------------------------------


def pattern(width, height, channels):
    """Deterministic pixels: a gradient with some texture."""
    return bytes((x * 37 + y * 11 + c * 85 + (x ^ y) * 3) & 0xFF
                 for y in range(height) for x in range(width) for c in range(channels))


def pil_bytes(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def interlaced_gray_png(width, height):
    """An 8-bit grayscale Adam7-interlaced PNG (PIL writes no interlaced PNGs)."""
    pixels = pattern(width, height, 1)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        xs = range(x0, width, dx)
        for y in range(y0, height, dy):
            if xs:
                raw += b"\x00" + bytes(pixels[y * width + x] for x in xs)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


def image_seeds():
    gray = Image.frombytes("L", (8, 8), pattern(8, 8, 1))
    rgb = Image.frombytes("RGB", (5, 3), pattern(5, 3, 3))
    rgba = Image.frombytes("RGBA", (4, 4), pattern(4, 4, 4))
    write("image_decode", "gray-8x8.png", pil_bytes(gray, "PNG"))
    write("image_decode", "rgb-5x3.png", pil_bytes(rgb, "PNG"))
    write("image_decode", "rgba-4x4.png", pil_bytes(rgba, "PNG"))
    palette = rgb.convert("P", palette=Image.ADAPTIVE, colors=4)
    write("image_decode", "palette-trns-5x3.png", pil_bytes(palette, "PNG", transparency=0))
    gray16 = Image.frombytes("I;16", (3, 2), bytes(range(12)))
    write("image_decode", "gray16-3x2.png", pil_bytes(gray16, "PNG"))
    write("image_decode", "gray-interlaced-9x7.png", interlaced_gray_png(9, 7))
    write("image_decode", "gray-8x8.jpg", pil_bytes(gray, "JPEG", quality=90))
    rgb16 = Image.frombytes("RGB", (16, 16), pattern(16, 16, 3))
    write("image_decode", "rgb-16x16-420.jpg", pil_bytes(rgb16, "JPEG", quality=75))
    write("image_decode", "rgb-16x16-progressive.jpg",
          pil_bytes(rgb16, "JPEG", quality=75, progressive=True))
    write("image_decode", "cmyk-8x8.jpg", pil_bytes(rgb16.resize((8, 8)).convert("CMYK"), "JPEG"))
    # Far larger than the model along one side or both: the box-averaging path before
    # the resize (small files: flat images compress to almost nothing).
    write("image_decode", "gray-strip-1x20000.png", pil_bytes(Image.new("L", (1, 20000), 90), "PNG"))
    write("image_decode", "rgb-strip-9000x3.png", pil_bytes(rgb.resize((9000, 3)), "PNG"))
    write("image_decode", "gray-300x200.png", pil_bytes(gray.resize((300, 200)), "PNG"))
    with open(os.path.join(ROOT, "examples", "ankle-boot.png"), "rb") as f:
        ankle_boot = f.read()
    write("image_decode", "ankle-boot-28x28.png", ankle_boot)
    write("image_decode", "ankle-boot-28x28.jpg",
          pil_bytes(Image.open(io.BytesIO(ankle_boot)).convert("L"), "JPEG", quality=90))
    return {"png": pil_bytes(gray, "PNG"), "jpeg": pil_bytes(gray, "JPEG", quality=90),
            "mnist": ankle_boot}


# --- prompts ------------------------------------------------------------------------

PROMPTS = {
    "kjv.txt": "In the beginning God created the heaven and the earth.\n"
               "And the earth was without form, and void; and darkness was upon the face of "
               "the deep. And the Spirit of God moved upon the face of the waters.\n",
    "english.txt": "Hello, world! It's 2026; we're testing the tokenizer's edge-cases (don't "
                   "they'll I'd you've).",
    "code.txt": "def f(x):\n    return {'a': x ** 2, \"b\": [1, 2, 3]}  # comment\n\tif x != 0:\n",
    "whitespace.txt": "  leading   runs\n\n\n\ttabs \r\n trailing   \u00a0nbsp\u3000ideographic ",
    "scripts.txt": "Ελληνικά русский 中文字符 日本語のテキスト 한국어 עברית العربية हिन्दी",
    "emoji.txt": "👩‍👩‍👧‍👦 🇩🇪 👍🏽 e\u0301 Å ﬁ ½ ①②",
    "digits.txt": "3.14159 1,000,000 0x7fff 2026-12-01 12:34:56 ٣٤٥ ১২৩",
    "endoftext.txt": "<|endoftext|> The end.",
}


def prompt_seeds():
    for name, text in PROMPTS.items():
        write("tokenizer", name, text)
    write("tokenizer", "invalid-utf8.bin",
          b"abc \xff\xfe def \xc3 truncated \xe2\x82 lone \x80 surrogate \xed\xa0\x80 end")


# --- configs ------------------------------------------------------------------------

CONFIGS = {
    "minimal.yaml": "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n",
    "limits.yaml": "limits:\n  max_message_bytes: 1048576\n  max_prompt_tokens: 64\n"
                   "  max_new_tokens: 32\n  default_new_tokens: 16\n  max_stop_strings: 4\n"
                   "  max_stop_bytes: 32\n  queue_size: 8\n  default_deadline: 250ms\n"
                   "  max_deadline: 1m\n  feedback_window: 10\n  max_image_pixels: 1024\n"
                   "  max_connection_idle: 90s\n  handshake_timeout: 5s\n",
    "batching-generate.yaml": "threads: 2\nbatching: {max_batch_size: 4, max_queue_delay: 500us, "
                              "workers: 1}\ngenerate:\n  max_sequences: 2\n  max_kv_positions: 300\n",
    "experiments.yaml": "models:\n  resnet20-fashion: {default_variant: gem-n1}\nexperiments:\n"
                        "  - model: resnet20-fashion\n    split: {gelu: 70, gem-n1: 30}\n"
                        "    sticky: false\n    salt: s\n    baseline: gelu\n    shadow:\n"
                        "      variants: [relu, gem-n2]\n      sample_rate: 0.5\n"
                        "      queue_size: 3\n",
    "tls-auth.yaml": "tls:\n  cert_file: server.pem\n  key_file: server.key\n"
                     "  client_ca_file: ca.pem\nauth:\n  admin_token_file: admin.token\n"
                     "  inference_token_file: inference.token\n",
    "blank-token.yaml": "auth: {admin_token_file: blank.token}\n",
    "http-shutdown.yaml": "shutdown: {grace_period: 1.5s}\nhttp: {threads: 2, read_timeout: 100ms, "
                          "max_body_bytes: 1024}\ndevice: cpu\nmodel_repository: models/repository\n",
    "flow-style.yaml": "{listen: '[::1]:0', limits: {max_new_tokens: 8, default_new_tokens: 8}, "
                       "experiments: [{model: m, split: {a: 0, b: 1}}]}\n",
    "empty.yaml": "",
    "unknown-key.yaml": "limits:\n  max_new_token: 10\n",
}


def config_seeds():
    for name, text in CONFIGS.items():
        write("server_config", name, text)
    with open(os.path.join(ROOT, "deploy", "gemserve.yaml"), "rb") as f:
        write("server_config", "deploy-gemserve.yaml", f.read())


# --- requests -----------------------------------------------------------------------


def protobuf_module():
    """gemserve/v1/inference.proto compiled for Python into a temporary directory."""
    out = tempfile.mkdtemp(prefix="gemserve-seeds-")
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out", out,
                    os.path.join(ROOT, "proto", "gemserve", "v1", "inference.proto")], check=True)
    sys.path.insert(0, out)
    from gemserve.v1 import inference_pb2  # pylint: disable=import-outside-toplevel
    return inference_pb2


def request_seeds(images):
    pb = protobuf_module()
    requests = {
        "classify-png": pb.ClassifyRequest(model="resnet20-fashion", image=images["png"], top_k=3),
        "classify-jpeg": pb.ClassifyRequest(model="resnet20-fashion", variant="gelu",
                                            image=images["jpeg"]),
        "classify-mnist-png": pb.ClassifyRequest(model="resnet20-fashion", routing_key="user-42",
                                                 image=images["mnist"]),
        "classify-tensor": pb.ClassifyRequest(
            model="resnet20-fashion",
            tensor=pb.Tensor(shape=[1, 1, 28, 28], data=[(i % 29) / 28.0 for i in range(784)])),
        "classify-tensor-bad-shape": pb.ClassifyRequest(
            model="resnet20-fashion", tensor=pb.Tensor(shape=[1, 2, 2], data=[0.0, 0.5, 1.0, 2.0])),
        "classify-empty": pb.ClassifyRequest(model="resnet20-fashion"),
        "generate-greedy": pb.GenerateRequest(model="gpt2-kjv", prompt="And God said",
                                              max_new_tokens=40),
        "generate-sampled": pb.GenerateRequest(model="gpt2-kjv", variant="gem-n2",
                                               prompt="In the beginning", temperature=0.8,
                                               top_k=40, top_p=0.95, seed=7,
                                               stop=["\n", "LORD"]),
        "generate-stop-in-prompt": pb.GenerateRequest(
            model="gpt2-kjv", prompt="Let there be light: and there was light.",
            temperature=1.5, stop=["light", "there was", "ight:"]),
        "generate-bad-sampling": pb.GenerateRequest(model="gpt2-kjv", prompt="x",
                                                    temperature=-1.0, top_k=-2, top_p=1.5),
        "generate-unicode": pb.GenerateRequest(model="gpt2-kjv", prompt=PROMPTS["emoji.txt"],
                                               stop=["🇩", "é"], temperature=1e-30),
    }
    for name, message in requests.items():
        write("request", name + ".pb", message.SerializeToString())


def main():
    images = image_seeds()
    prompt_seeds()
    config_seeds()
    request_seeds(images)


if __name__ == "__main__":
    main()
