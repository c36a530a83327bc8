"""Replaces one marked section of docs/PERFORMANCE.md, leaving the others as they are."""


def replace_section(path: str, name: str, lines: list) -> None:
    """Writes `lines` between the markers of section `name` (appended if absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    try:
        text = open(path).read()
    except FileNotFoundError:
        text = "# Performance\n\nEvery figure here was measured; the command is beside it.\n"
    block = "\n".join([begin] + lines + [end])
    if begin in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    open(path, "w").write(text)
