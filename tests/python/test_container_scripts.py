"""The container image's steps, without a Docker engine: scripts/container/runtime-stage.sh
stages the built binaries, the demo model repository and the config into a temporary
root (as the Dockerfile's build stage does into /stage), and the staged tree must

  - link only libraries of the runtime apt packages (scripts/container/runtime-packages.txt,
    the list the Dockerfile installs) or its own lib/libgem_ops.so, nothing of the build tree;
  - serve: the staged gem-server, run from the staged /opt/gemserve with the staged config
    and models, answers grpc.health.v1 SERVING (the image's HEALTHCHECK) and exits 0 on SIGTERM.

Nothing is installed: the packages are looked up with dpkg on this machine, where the
build's dependencies are installed."""
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gemserve_testing import REPO, build_dir, stop_process

CONTAINER = REPO / "scripts" / "container"
PREFIX = Path("opt/gemserve")


def runtime_packages(variant: str) -> list:
    result = subprocess.run([str(CONTAINER / "runtime-packages.sh"), variant],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    """The staging root DEST, filled by runtime-stage.sh from $GEMSERVE_BUILD_DIR."""
    dest = tmp_path_factory.mktemp("container-root")
    result = subprocess.run([str(CONTAINER / "runtime-stage.sh")], capture_output=True, text=True,
                            env={**os.environ, "DEST": str(dest), "BUILD_DIR": str(build_dir())},
                            timeout=120)
    assert result.returncode == 0, f"runtime-stage.sh failed:\n{result.stdout}\n{result.stderr}"
    return dest


def files_under(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_stages_binaries_models_and_config(staged):
    prefix = staged / PREFIX
    for name in ("gem-server", "gem-client"):
        assert os.access(prefix / "bin" / name, os.X_OK), f"no executable bin/{name}"
    assert (prefix / "lib" / "libgem_ops.so").is_file()
    source = REPO / "models" / "repository"
    assert files_under(prefix / "models" / "repository") == files_under(source)
    for name in ("resnet20-fashion/gem-n1/model.pt", "gpt2-kjv/gem-n2/model.json"):
        assert (prefix / "models/repository" / name).read_bytes() == (source / name).read_bytes()
    assert (prefix / "deploy" / "gemserve.yaml").read_bytes() == \
        (REPO / "deploy" / "gemserve.yaml").read_bytes()
    # Nothing else: the image's /opt/gemserve is exactly these four directories.
    assert sorted(p.name for p in prefix.iterdir()) == ["bin", "deploy", "lib", "models"]
    assert [p.name for p in staged.iterdir()] == ["opt"]


def runpath(path: Path) -> str:
    dynamic = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                             check=True).stdout
    match = re.search(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dynamic)
    return match.group(1) if match else ""


def needed(path: Path) -> list:
    dynamic = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True,
                             check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", dynamic)


def test_runpath_points_into_the_staged_tree(staged):
    prefix = staged / PREFIX
    assert runpath(build_dir() / "gem-server"), "the build's gem-server has no RUNPATH to rewrite?"
    assert runpath(prefix / "bin" / "gem-server") == "$ORIGIN/../lib"
    for path in (prefix / "bin" / "gem-client", prefix / "lib" / "libgem_ops.so"):
        assert runpath(path) in ("", "$ORIGIN"), f"{path}: RUNPATH {runpath(path)!r}"


def ldd(path: Path) -> dict:
    """{soname: resolved path} of ldd's answer; fails on 'not found'."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True,
                         env=env).stdout
    assert "not found" not in out, f"ldd {path}: unresolved libraries:\n{out}"
    libraries = {}
    for line in out.splitlines():
        match = re.match(r"\s*(\S+) => (/\S+) \(", line)
        if match:
            libraries[match.group(1)] = match.group(2)
        elif re.match(r"\s*(/\S+) \(", line):  # the dynamic loader itself
            path_ = line.split()[0]
            libraries[Path(path_).name] = path_
    return libraries


def owning_packages(paths) -> dict:
    """{path: package} by dpkg -S; a path dpkg does not know is absent. Tries the real
    path with and without /usr (Debian 12 merges /lib into /usr/lib, dpkg knows one)."""
    candidates = {}
    for path in paths:
        real = os.path.realpath(path)
        for candidate in {real, real.removeprefix("/usr"), "/usr" + real if not
                          real.startswith("/usr/") else real}:
            candidates.setdefault(candidate, set()).add(path)
    result = subprocess.run(["dpkg", "-S", *sorted(candidates)], capture_output=True, text=True)
    owners = {}
    for line in result.stdout.splitlines():
        package, _, file = line.partition(": ")
        for path in candidates.get(file.strip(), ()):
            owners[path] = package.split(":")[0]
    return owners


def dependency_closure(roots) -> set:
    """The installed packages apt brings for roots: Depends and Pre-Depends, recursively;
    an alternative (a | b) or a virtual name counts every installed package satisfying it."""
    out = subprocess.run(["dpkg-query", "-W", "-f",
                          "${Package}\t${Status}\t${Provides}\t${Pre-Depends}, ${Depends}\n"],
                         capture_output=True, text=True, check=True).stdout
    depends, providers = {}, {}
    for line in out.splitlines():
        package, status, provides, deps = line.split("\t")
        if "install ok installed" not in status:
            continue
        providers.setdefault(package, set()).add(package)
        for name in re.findall(r"([a-z0-9][a-z0-9+.\-]*)(?::\w+)?\s*(?:\([^)]*\))?", provides):
            providers.setdefault(name, set()).add(package)
        depends[package] = [re.findall(r"([a-z0-9][a-z0-9+.\-]*)(?::\w+)?\s*(?:\([^)]*\))?", group)
                            for group in deps.split(",") if group.strip()]
    missing = [r for r in roots if r not in depends]
    assert not missing, f"runtime packages not installed here, cannot check them: {missing}"
    seen, todo = set(), list(roots)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        for alternatives in depends.get(package, []):
            for name in alternatives:
                todo.extend(providers.get(name, ()))
    return seen


def test_every_library_comes_from_the_runtime_packages(staged):
    prefix = staged / PREFIX
    listed = runtime_packages("cpu")
    closure = dependency_closure(listed)
    files = [prefix / "bin" / "gem-server", prefix / "bin" / "gem-client",
             prefix / "lib" / "libgem_ops.so"]
    resolved = {f: ldd(f) for f in files}

    # libgem_ops.so is the staged copy, never the build tree's.
    assert resolved[files[0]]["libgem_ops.so"].startswith(str(prefix / "bin" / ".." / "lib")), \
        resolved[files[0]]["libgem_ops.so"]
    system = {path for libraries in resolved.values() for path in libraries.values()
              if not path.startswith(str(staged))}
    project = {path for libraries in resolved.values() for path in libraries.values()
               if path.startswith(str(staged))}
    assert {Path(p).name for p in project} == {"libgem_ops.so"}, project
    assert len(system) > 100, f"ldd found only {len(system)} libraries: LibTorch's are missing?"

    owners = owning_packages(system)
    unowned = sorted(system - owners.keys())
    assert not unowned, f"libraries no Debian package ships: {unowned}"
    outside = sorted(f"{path} ({owners[path]})" for path in system if owners[path] not in closure)
    assert not outside, ("libraries from packages that the runtime package list does not bring "
                         "(add the package to scripts/container/runtime-packages.txt):\n  "
                         + "\n  ".join(outside))

    # What the binaries link directly must be listed itself, not come along by chance.
    direct = {}
    for f in files:
        for soname in needed(f):
            if soname != "libgem_ops.so":
                direct[resolved[f][soname]] = f"{f.name} NEEDED {soname}"
    direct_owners = owning_packages(direct)
    unlisted = sorted(f"{why}: {direct_owners.get(path)}" for path, why in direct.items()
                      if direct_owners.get(path) not in listed)
    assert not unlisted, f"directly linked libraries whose package is not listed: {unlisted}"

    # LibTorch's BLAS (libblas.so.3, an alternative any of several packages provides) is
    # the optimized one, and listed: left to apt, the image would get reference BLAS.
    blas = next(p for libraries in resolved.values() for s, p in libraries.items()
                if s == "libblas.so.3")
    assert owners[blas] == "libopenblas0-openmp", f"libblas.so.3 is {owners[blas]}'s"
    assert owners[blas] in listed, f"{owners[blas]} is not in the runtime package list"


def test_runtime_package_list_variants():
    cpu, cuda = runtime_packages("cpu"), runtime_packages("cuda")
    assert "libtorch1.13" in cpu and "libtorch1.13" not in cuda
    assert set(cuda) < set(cpu)
    bad = subprocess.run([str(CONTAINER / "runtime-packages.sh"), "gpu"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "cpu or cuda" in bad.stderr


def test_set_runpath_refuses_a_longer_value(tmp_path):
    copy = tmp_path / "gem-server"
    copy.write_bytes((build_dir() / "gem-server").read_bytes())
    old = runpath(copy)
    script = [str(CONTAINER / "set-runpath.py"), str(copy)]
    longer = subprocess.run(script + ["/x" * len(old)], capture_output=True, text=True)
    assert longer.returncode == 1 and "longer" in longer.stderr
    assert runpath(copy) == old, "a refused rewrite changed the file"
    shorter = subprocess.run(script + ["/opt/x"], capture_output=True, text=True)
    assert shorter.returncode == 0, shorter.stderr
    assert runpath(copy) == "/opt/x"
    assert copy.stat().st_size == (build_dir() / "gem-server").stat().st_size


def grpc_health(address: str) -> int:
    """grpc.health.v1.Health/Check for the whole server ("") by hand: the request is empty,
    the answer field 1 (status) a varint; 1 = SERVING."""
    import grpc
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        answer = check(b"", timeout=5)
    assert answer[:1] in (b"", b"\x08"), f"unexpected HealthCheckResponse bytes {answer!r}"
    return answer[1] if answer else 0


def test_staged_server_serves_from_the_staged_tree(staged, tmp_path):
    prefix = staged / PREFIX
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "GEMSERVE_OPS_LIB")}
    # As the image's CMD: relative config and models, from /opt/gemserve; port 0 here.
    process = subprocess.Popen(
        ["bin/gem-server", "--config", "deploy/gemserve.yaml",
         "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
        cwd=prefix, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            for line in list(lines):
                match = re.search(r"grpc listening on (\S+)", line)
                if match:
                    address = match.group(1)
            assert process.poll() is None, f"staged gem-server exited:\n{''.join(lines)[-3000:]}"
            assert time.monotonic() < deadline, f"no 'grpc listening':\n{''.join(lines)[-3000:]}"
            time.sleep(0.1)
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        ops = {line.split()[-1] for line in maps.splitlines() if "libgem_ops.so" in line}
        assert ops == {str(prefix / "lib" / "libgem_ops.so")}, f"libgem_ops.so mapped from {ops}"
        assert str(build_dir()) + "/" not in maps and str(REPO / "build") + "/" not in maps

        while True:  # health turns SERVING once the models are loaded
            status = grpc_health(address)
            if status == 1:
                break
            assert time.monotonic() < deadline, f"health status {status}, never SERVING"
            time.sleep(0.3)

        # The image's HEALTHCHECK command, as the Dockerfile writes it, against this server.
        command = healthcheck_command()
        assert command[0] == "gem-client", command
        command = [str(prefix / "bin" / "gem-client")] + [
            address if arg == "127.0.0.1:50051" else arg for arg in command[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
        assert result.returncode == 0 and result.stdout.strip() == "SERVING", \
            f"{command}: exit {result.returncode}\n{result.stdout}{result.stderr}"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, f"exit {process.returncode}:\n{''.join(lines)[-3000:]}"
    finally:
        stop_process(process)


def healthcheck_command():
    """The Dockerfile's HEALTHCHECK CMD, as an argument list."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    line = next(l for l in text.splitlines() if l.startswith("HEALTHCHECK "))
    return json.loads(line[line.index("CMD") + 3:])


def test_dockerfile_runs_the_shared_scripts():
    text = (REPO / "Dockerfile").read_text()
    lines = [l for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.startswith("#")]
    froms = [l.split() for l in lines if l.startswith("FROM ")]
    assert [f[1] for f in froms] == ["debian:bookworm", "debian:bookworm-slim"], froms
    assert froms[0][-1] == "build"
    build_stage = text[text.index("AS build"):text.index("AS runtime")]
    runtime = text[text.index("AS runtime"):]
    assert "scripts/install-deps.sh" in build_stage
    assert "scripts/container/build-stage.sh" in build_stage
    assert "runtime-packages.sh --install" in runtime
    assert "COPY --from=build /stage/ /" in runtime
    # Every script the Dockerfile names exists and is executable.
    for script in set(re.findall(r"scripts/[\w/.-]+\.sh", text)):
        assert os.access(REPO / script, os.X_OK), f"Dockerfile names {script}: not executable"
    # build-stage.sh stages with runtime-stage.sh, the script tested above.
    assert "runtime-stage.sh" in (CONTAINER / "build-stage.sh").read_text()
    user = [l.split()[1] for l in lines if l.startswith("USER ")]
    assert user and not user[-1].startswith(("0", "root")), user
    assert any(l.split()[1:] == ["50051", "9464"] for l in lines if l.startswith("EXPOSE "))
    health = next(l for l in lines if l.startswith("HEALTHCHECK "))
    assert '"gem-client"' in health and '"health"' in health
