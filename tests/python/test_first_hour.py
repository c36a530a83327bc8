"""What a new user meets in the first hour, run as they would run it: gem-client's answers
to a missing or misspelt command, options after the command, an unreachable server (its
own exit code and a hint), `health`, an unknown model (the message lists the models), a
failed `generate` (no prompt echoed); and gem-server refusing a config whose models:
section names a default variant its model does not have."""

import socket
import subprocess

import pytest

import gemserve_testing as gt

EXIT_SERVER_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
IMAGE = str(gt.REPO / "examples" / "ankle-boot.png")


def small_repository(root):
    """resnet20-fashion with only gem-n1: starts in about a second."""
    return gt.demo_subset(root, ["resnet20-fashion/labels.txt", "resnet20-fashion/gem-n1"])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("first-hour")
    config = work / "gemserve.yaml"
    config.write_text("models:\n  resnet20-fashion: {default_variant: gem-n1}\n")
    process = gt.Server(config, work / "gem-server.log", model_repository=small_repository(work))
    yield process
    process.stop()


def gem_client(*args, timeout=60):
    return subprocess.run([str(gt.build_dir() / "gem-client"), *args], capture_output=True,
                          text=True, timeout=timeout)


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_command_lists_the_commands():
    result = gem_client()
    assert result.returncode == EXIT_USAGE
    assert "a command is required" in result.stderr
    for command in ("models", "classify", "generate", "health"):
        assert command in result.stderr


def test_a_misspelt_command_is_named_with_the_list():
    result = gem_client("clasify", "--model", "m", IMAGE)
    assert result.returncode == EXIT_USAGE
    assert 'unknown command "clasify"' in result.stderr
    assert "classify" in result.stderr.split("commands:")[1]


def test_an_unknown_option_of_a_command_is_named(server):
    result = gem_client("--server", server.grpc, "classify", "--model", "resnet20-fashion",
                        "--bogus", "1", IMAGE)
    assert result.returncode == EXIT_USAGE
    assert 'unexpected argument "--bogus"' in result.stderr


def test_connection_options_may_follow_the_command(server):
    result = gem_client("models", "--server", server.grpc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("resnet20-fashion (classify, default variant: gem-n1)")


def test_an_unreachable_server_has_its_own_exit_code_and_a_hint():
    address = f"127.0.0.1:{closed_port()}"
    result = gem_client("--server", address, "--connect-timeout", "2", "models")
    assert result.returncode == EXIT_UNREACHABLE
    assert f"cannot reach gem-server at {address}" in result.stderr
    assert "--server HOST:PORT" in result.stderr


def test_health_exits_zero_when_serving(server):
    whole = gem_client("--server", server.grpc, "health")
    assert (whole.returncode, whole.stdout.strip()) == (0, "SERVING"), whole.stderr
    variant = gem_client("--server", server.grpc, "health", "--service", "resnet20-fashion/gem-n1")
    assert (variant.returncode, variant.stdout.strip()) == (0, "SERVING"), variant.stderr
    unknown = gem_client("--server", server.grpc, "health", "--service", "resnet20-fashion/nope")
    assert unknown.returncode == EXIT_SERVER_ERROR
    assert "NOT_FOUND" in unknown.stderr


def test_an_unknown_model_lists_the_models(server):
    result = gem_client("--server", server.grpc, "classify", "--model", "resnet-fashion", IMAGE)
    assert result.returncode == EXIT_SERVER_ERROR
    assert 'unknown model "resnet-fashion"; models: resnet20-fashion' in result.stderr


def test_a_failed_generate_prints_no_prompt(server):
    result = gem_client("--server", server.grpc, "generate", "--model", "gpt2-kjv", "And God said")
    assert result.returncode == EXIT_SERVER_ERROR
    assert result.stdout == ""
    assert "NOT_FOUND" in result.stderr


def test_the_server_refuses_a_default_variant_the_model_lacks(tmp_path):
    config = tmp_path / "gemserve.yaml"
    config.write_text("models:\n  resnet20-fashion: {default_variant: gem-n9}\n")
    result = subprocess.run(
        [str(gt.build_dir() / "gem-server"), "--config", str(config), "--model-repository",
         str(small_repository(tmp_path)), "--listen", "127.0.0.1:0", "--metrics-listen",
         "127.0.0.1:0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert ('default_variant "gem-n9" is not a variant of resnet20-fashion; variants: gem-n1'
            in result.stderr)
    assert "grpc listening" not in result.stdout
