"""docs/CONFIG.md and docs/METRICS.md checked against gem-server itself, black-box.

Config keys. The parser rejects an unknown key with "PATH.KEY: unknown key (known: a, b)"
and exits 2 before loading any model, so one start per probe lists the keys of one
section. A key is classified by giving it {UNKNOWN: {UNKNOWN: 1}}:
  - "P.K.<unknown>: unknown key (known: ...)"  K is a section, and these are its keys;
  - "P.K.<unknown>.<unknown>: unknown key (known: ...)"  K is an open map whose entries
    are sections (models.<model>: any key is a model name);
  - the message names "P.K.<unknown>" otherwise  K is an open map of scalars
    (experiments[].split.<variant>);
  - "P.K must be a list"  K is a list of sections (experiments[]), probed as [entry];
  - anything else ("cannot read", "must be > 0")  K is a scalar.
Each probe is a gem-server start (about 0.5 s on 2 cores, LibTorch's start-up), so not
every key is classified: every key of the top level, and of sections inside a list or an
open map (experiments[], experiments[].shadow, models.<model>), is; in the plain top-level
sections (limits, batching, generate, shutdown, http, tls, auth) only keys the doc calls a
mapping or a list are, the others are taken as scalars (a new key there still fails the
test until it is documented, as any key does). experiments[].split cannot be listed by an
unknown key (every key is a variant name): it is recognised as an open map of scalars and
documented as experiments[].split.<variant>; models likewise as models.<model>.

deploy/gemserve.yaml: every key it sets, also in its commented-out examples (lines "# key:"
uncommented before parsing), must be documented.

Flags: the flags of `gem-server --help` and those of the doc's flag table are the same.

Metrics: one gem-server on a small symlinked repository with deploy/gemserve.yaml's
experiment (shadow and telemetry sample_rate raised to 1) gets Classify (routed, shadowed), Feedback (label and
reward), a request for an unknown model, Generate, and a Generate that expires in the
queue behind a long one (generate.max_sequences: 1); then every scraped family must be in
docs/METRICS.md with its type and label names, every documented family must be scraped,
and each histogram's buckets must match the doc's bucket table.
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import threading

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

CONFIG_MD = gt.REPO / "docs" / "CONFIG.md"
METRICS_MD = gt.REPO / "docs" / "METRICS.md"
DEPLOY_YAML = gt.REPO / "deploy" / "gemserve.yaml"
UNKNOWN = "zz_no_such_key"
NAME = "probe"  # the name given to an entry of an open map
# A list entry that parses, so that a probe of a section nested in it is reached:
# parse_experiment checks model and split before it parses shadow.
LIST_ENTRY = {"experiments": {"model": "m", "split": {"a": 1}}}
RESNET, GPT = "resnet20-fashion", "gpt2-kjv"

# Families gem-server defines that this test does not make appear, each with the reason.
# Empty: every family is driven below (gemserve_expired_requests_total by a Generate that
# waits behind a long one past its deadline).
NOT_DRIVEN = {}


def norm(path: str) -> str:
    """A dotted path with every <name> placeholder written "<>"."""
    return re.sub(r"<[^>]*>", "<>", path)


# ----------------------------------------------------------------------------- docs

def table_rows(text: str):
    """The cells of every Markdown table row that is not a header or a rule."""
    for line in text.splitlines():
        if not line.startswith("|") or re.match(r"^\|[-| ]+\|$", line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] not in ("Key", "Flag", "Family", "Families"):
            yield cells


def documented_config():
    """({normalized section: {key: type}}, {normalized path: path as written}, flags)."""
    sections, written, flags = {}, {}, set()
    for cells in table_rows(CONFIG_MD.read_text()):
        first = re.findall(r"`([^`]+)`", cells[0])
        if not first:
            continue
        if first[0].startswith("-"):
            flags.update(f.split()[0] for f in first)
            continue
        assert len(first) == 1 and len(cells) == 5, f"CONFIG.md: malformed row {cells}"
        path = first[0]
        section, _, key = path.rpartition(".")
        sections.setdefault(norm(section), {})[norm(key)] = cells[1]
        written[norm(path)] = path
    return sections, written, flags


def documented_metrics():
    """({family: (type, [labels])}, [(families, bounds, first, last)])."""
    families, buckets = {}, []
    for cells in table_rows(METRICS_MD.read_text()):
        names = re.findall(r"`([a-z_:]+)`", cells[0])
        if len(cells) >= 3 and cells[1] in ("counter", "gauge", "histogram"):
            assert len(names) == 1, f"METRICS.md: malformed row {cells}"
            assert names[0] not in families, f"METRICS.md: {names[0]} documented twice"
            families[names[0]] = (cells[1], re.findall(r"`([a-z_]+)`", cells[2]))
        elif names and len(cells) == 5 and cells[1].isdigit():
            buckets.append((names, int(cells[1]), float(cells[2]), float(cells[3])))
    return families, buckets


def is_mapping_type(doc_type: str) -> bool:
    """Whether a CONFIG.md type names a section (a mapping, or a list of mappings)."""
    return doc_type in ("mapping", "list")


# ----------------------------------------------------------------------------- parser probes

@pytest.fixture(scope="module")
def small_repository(tmp_path_factory):
    """The variants deploy/gemserve.yaml names (symlinks): resnet20-fashion's experiment
    arms, shadow and default, gpt2-kjv's default and its tokenizer."""
    deploy = yaml.safe_load(DEPLOY_YAML.read_text())
    experiment = next(e for e in deploy["experiments"] if e["model"] == RESNET)
    wanted = {RESNET: {"labels.txt", deploy["models"][RESNET]["default_variant"],
                       *experiment["split"], *experiment["shadow"]["variants"]},
              GPT: {"tokenizer", deploy["models"][GPT]["default_variant"]}}
    return gt.demo_subset(tmp_path_factory.mktemp("docs-reference"),
                          [f"{model}/{name}" for model, names in wanted.items() for name in names])


class Parser:
    """Runs gem-server on one-off configs and reads its config errors."""

    def __init__(self, directory, repository):
        self.directory = directory
        self.repository = repository
        self.count = 0
        self.lock = threading.Lock()

    def error(self, config: dict) -> str:
        with self.lock:
            self.count += 1
            path = self.directory / f"probe-{self.count}.yaml"
        path.write_text(yaml.safe_dump(config))
        result = subprocess.run(
            [str(gt.build_dir() / "gem-server"), "--config", str(path), "--model-repository",
             str(self.repository), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
            cwd=gt.REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "listening" not in result.stdout, (
            f"gem-server should refuse {path.read_text()!r} with exit 2; got "
            f"{result.returncode}: {result.stdout[-500:]} {result.stderr[-500:]}")
        return result.stderr.strip()


def wrap(section: list, inner):
    """The config placing `inner` at section (tokens such as "experiments[]", "<model>")."""
    node = inner
    for token in reversed(section):
        if token.endswith("[]"):
            name = token[:-2]
            node = {name: [{**LIST_ENTRY.get(name, {}), **node}]}
        elif token.startswith("<"):
            node = {NAME: node}
        else:
            node = {token: node}
    return node


def rendered(section: list) -> str:
    """A section as the parser names it in messages: experiments[0].shadow, models.probe."""
    return ".".join(t[:-2] + "[0]" if t.endswith("[]") else NAME if t.startswith("<") else t
                    for t in section)


def known_keys(message: str, path: str):
    """The list of an unknown-key message about path.UNKNOWN, or None."""
    where = f"{path}.{UNKNOWN}" if path else UNKNOWN
    match = re.search(rf"(?:^|: ){re.escape(where)}: unknown key \(known: ([^)]*)\)", message)
    return None if match is None else [k.strip() for k in match.group(1).split(",")]


def classify(parser: Parser, section: list, key: str):
    """("section", keys) | ("sections map", keys) | ("scalars map", None) |
    ("list", keys) | ("scalar", None) for `key` of `section`."""
    path = rendered(section + [key])
    # A mapping whose one key is unknown and whose value is a mapping again: no section,
    # open map or scalar can read it without an error that tells which it is.
    message = parser.error(wrap(section, {key: {UNKNOWN: {UNKNOWN: 1}}}))
    if (keys := known_keys(message, path)) is not None:
        return "section", keys
    if (keys := known_keys(message, f"{path}.{UNKNOWN}")) is not None:
        return "sections map", keys
    if f"{path}.{UNKNOWN}" in message:
        return "scalars map", None
    if re.search(rf"(?:^|: ){re.escape(path)} must be a list", message):
        entry = parser.error(wrap(section + [key + "[]"], {UNKNOWN: 1}))
        keys = known_keys(entry, rendered(section + [key + "[]"]))
        assert keys is not None, f"{path}: a list whose entries are not mappings? {entry!r}"
        return "list", keys
    return "scalar", None


@pytest.fixture(scope="module")
def parser_sections(tmp_path_factory, small_repository):
    """{normalized section: {key: kind}} from gem-server, and the probe count."""
    parser = Parser(tmp_path_factory.mktemp("config-probes"), small_repository)
    documented, _, _ = documented_config()
    sections = {}
    root_keys = known_keys(parser.error({UNKNOWN: 1}), "")
    assert root_keys, "gem-server did not list the top-level keys"
    pending = [([], root_keys)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        while pending:
            work = []
            for section, keys in pending:
                name = norm(".".join(section))
                sections[name] = {k: "scalar" for k in keys}
                classify_all = not section or any("[]" in t or t.startswith("<") for t in section)
                for key in keys:
                    doc_type = documented.get(name, {}).get(key, "")
                    if classify_all or is_mapping_type(doc_type):
                        work.append((section, key, pool.submit(classify, parser, section, key)))
            pending = []
            for section, key, future in work:
                kind, keys = future.result()
                name = norm(".".join(section))
                sections[name][key] = kind
                if kind == "section":
                    pending.append((section + [key], keys))
                elif kind == "sections map":
                    pending.append((section + [key, "<>"], keys))
                elif kind == "scalars map":
                    sections[norm(".".join(section + [key]))] = {"<>": "scalar"}
                elif kind == "list":
                    pending.append((section + [key + "[]"], keys))
    return sections


def test_documented_config_keys_are_the_parsers(parser_sections):
    documented, written, _ = documented_config()
    problems = []
    for section in sorted(set(parser_sections) | set(documented)):
        shown = section or "(top level)"
        if section not in documented:
            problems.append(f"section {shown} exists in gem-server but CONFIG.md has no keys of it "
                            f"(keys: {sorted(parser_sections[section])})")
            continue
        if section not in parser_sections:
            problems.append(f"CONFIG.md documents section {shown}, which gem-server does not have")
            continue
        for key in sorted(set(parser_sections[section]) - set(documented[section])):
            problems.append(f"{shown}: key {key!r} exists but is not documented")
        for key in sorted(set(documented[section]) - set(parser_sections[section])):
            path = written[norm(f"{section}.{key}" if section else key)]
            problems.append(f"CONFIG.md documents {path}, which gem-server does not accept")
        for key, kind in parser_sections[section].items():
            doc_type = documented[section].get(key)
            if doc_type is None:
                continue
            nested = kind != "scalar"
            if nested != is_mapping_type(doc_type):
                problems.append(f"{shown}.{key}: gem-server reads a {kind}, CONFIG.md says {doc_type!r}")
            if (kind == "list") != (doc_type == "list"):
                problems.append(f"{shown}.{key}: a list in gem-server, CONFIG.md says {doc_type!r}")
    assert not problems, "docs/CONFIG.md and the parser disagree:\n" + "\n".join(problems)


def test_the_probes_saw_the_sections_the_doc_describes(parser_sections):
    # Guards the black-box walk itself: the nested kinds of sections must have been found.
    for section in ("", "limits", "experiments[]", "experiments[].shadow", "experiments[].split",
                    "models.<>", "tls", "auth"):
        assert section in parser_sections, f"the probes did not find section {section!r}"


def uncommented(text: str) -> str:
    """deploy/gemserve.yaml with its commented-out example keys ("# key: ...") as YAML."""
    return "\n".join(line[2:] if re.match(r"^# ( *)[a-z_]+:(\s|$)", line) else line
                     for line in text.splitlines())


def key_paths(node, path: str, open_maps: set):
    """Normalized dotted paths of every key set in a parsed config."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if norm(path) in open_maps:
                child = f"{path}.<>"
            if not (norm(path) in open_maps and isinstance(value, dict)):
                yield norm(child)  # an entry of models: is documented by its keys
            yield from key_paths(value, child, open_maps)
    elif isinstance(node, list) and path and not all(isinstance(v, (str, int, float)) for v in node):
        for value in node:
            yield from key_paths(value, path + "[]", open_maps)


def test_every_key_of_deploy_gemserve_yaml_is_documented():
    _, written, _ = documented_config()
    open_maps = {"models", "experiments[].split"}
    text = DEPLOY_YAML.read_text()
    plain = set(key_paths(yaml.safe_load(text), "", open_maps))
    everything = set(key_paths(yaml.safe_load(uncommented(text)), "", open_maps))
    assert {"tls.cert_file", "auth.admin_token_file", "generate.max_sequences"} <= everything - plain, (
        "the commented-out examples of deploy/gemserve.yaml were not read")
    missing = sorted(everything - set(written))
    assert not missing, f"deploy/gemserve.yaml sets keys docs/CONFIG.md lacks: {missing}"


def test_documented_flags_are_gem_servers():
    _, _, documented = documented_config()
    result = subprocess.run([str(gt.build_dir() / "gem-server"), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    actual = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", result.stdout))
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", CONFIG_MD.read_text()))
    assert named <= actual, f"CONFIG.md names flags gem-server lacks: {sorted(named - actual)}"
    assert documented == actual, (f"flag table {sorted(documented)} vs gem-server --help "
                                  f"{sorted(actual)}")


# ----------------------------------------------------------------------------- metrics

@pytest.fixture(scope="module")
def scrape(tmp_path_factory, small_repository):
    """/metrics of a gem-server that served every kind of request once or more."""
    import grpc
    work = tmp_path_factory.mktemp("docs-metrics")
    config = yaml.safe_load(DEPLOY_YAML.read_text())
    for key in ("listen", "metrics_listen", "model_repository"):
        config.pop(key, None)
    next(e for e in config["experiments"] if e["model"] == RESNET)["shadow"]["sample_rate"] = 1.0
    config["telemetry"]["sample_rate"] = 1.0  # every request fills the activation families
    config["batching"]["workers"] = 1
    config["generate"] = {"max_sequences": 1}  # a second Generate waits in the queue
    (work / "gemserve.yaml").write_text(yaml.safe_dump(config))
    server = gt.Server(work / "gemserve.yaml", work / "gem-server.log",
                       model_repository=small_repository)
    client = gt.InferenceClient(server.grpc)
    pb = gt.inference_pb2()
    try:
        image = (gt.REPO / "examples" / "ankle-boot.png").read_bytes()
        ids = [client.classify(pb.ClassifyRequest(model=RESNET, routing_key=f"user-{i}", image=image),
                               timeout=30).request_id for i in range(6)]
        client.feedback(pb.FeedbackRequest(request_id=ids[0], label=9), timeout=30)
        client.feedback(pb.FeedbackRequest(request_id=ids[1], reward=0.5), timeout=30)
        with pytest.raises(grpc.RpcError) as unknown:
            client.classify(pb.ClassifyRequest(model="no-such-model", image=image), timeout=30)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        def expired():
            samples = server.metrics_samples("gemserve_expired_requests_total")
            return sum(v for _, v in samples) >= 1, samples

        for _ in range(3):  # a long greedy stream holds the only slot; one behind it expires
            stream = client.generate(pb.GenerateRequest(model=GPT, prompt="And God said",
                                                        max_new_tokens=250), timeout=60)
            next(stream)
            with pytest.raises(grpc.RpcError):
                for _ in client.generate(pb.GenerateRequest(model=GPT, prompt="And",
                                                            max_new_tokens=4), timeout=0.05):
                    pass
            for _ in stream:
                pass
            try:
                gt.wait_for(expired, 5, "an expired request", server, poll_s=0.2)
                break
            except pytest.fail.Exception:
                continue

        def compared():
            samples = server.metrics_samples("gemserve_shadow_comparisons_total")
            return sum(v for _, v in samples) >= len(ids), samples

        gt.wait_for(compared, 30, "the shadow comparisons", server, poll_s=0.2)

        def recorded():
            samples = server.metrics_samples("gemserve_activation_samples_total")
            return any(labels["result"] == "recorded" for labels, _ in samples), samples

        gt.wait_for(recorded, 60, "an activation sample", server, poll_s=0.2)
        status, body = gt.http_get(f"http://{server.metrics}/metrics")
        assert status == 200
        return body
    finally:
        client.close()
        server.stop()


def scraped_families(body: str):
    """{family: (type, [label-name sets of its series], {series labels: [finite le]})}."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    families = {name: (kind, [], {}) for name, kind in types.items()}
    for line in body.splitlines():
        match = gt._SAMPLE.match(line)
        if not match or line.startswith("#"):
            continue
        name = match.group(1)
        labels = dict(gt._LABEL.findall(match.group(3) or ""))
        family = name if name in types else re.sub(r"_(bucket|sum|count)$", "", name)
        assert family in types, f"sample {name} of no declared family"
        le = labels.pop("le", None)
        if name == family + "_bucket":
            if le != "+Inf":
                families[family][2].setdefault(tuple(sorted(labels.items())), []).append(float(le))
        else:
            families[family][1].append(frozenset(labels))
    return families


def test_every_scraped_family_is_documented_and_every_documented_one_scraped(scrape):
    documented, _ = documented_metrics()
    scraped = scraped_families(scrape)
    undocumented = sorted(set(scraped) - set(documented))
    assert not undocumented, f"gem-server exports families docs/METRICS.md lacks: {undocumented}"
    unseen = sorted(set(documented) - set(scraped) - set(NOT_DRIVEN))
    assert not unseen, f"docs/METRICS.md documents families the scrape did not have: {unseen}"


def test_documented_types_and_labels_match_the_scrape(scrape):
    documented, _ = documented_metrics()
    problems = []
    for family, (kind, label_sets, _) in sorted(scraped_families(scrape).items()):
        if family not in documented:
            continue
        doc_kind, doc_labels = documented[family]
        if kind != doc_kind:
            problems.append(f"{family}: type {kind}, documented {doc_kind}")
        for names in set(label_sets):
            if names != set(doc_labels):
                problems.append(f"{family}: a series has labels {sorted(names)}, "
                                f"documented {sorted(doc_labels)}")
    assert not problems, "\n".join(problems)


def test_documented_buckets_match_the_scrape(scrape):
    documented, buckets = documented_metrics()
    scraped = scraped_families(scrape)
    histograms = {f for f, (kind, _) in documented.items() if kind == "histogram"}
    in_table = [f for names, *_ in buckets for f in names]
    assert sorted(in_table) == sorted(histograms), "the bucket table must name every histogram once"
    for names, count, first, last in buckets:
        for family in names:
            if family not in scraped:
                continue
            for series, bounds in scraped[family][2].items():
                assert len(bounds) == count, f"{family}{dict(series)}: {len(bounds)} bounds"
                assert bounds == sorted(bounds)
                assert bounds[0] == pytest.approx(first, rel=1e-4), f"{family}: first {bounds[0]}"
                assert bounds[-1] == pytest.approx(last, rel=1e-4), f"{family}: last {bounds[-1]}"
