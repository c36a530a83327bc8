#!/usr/bin/python3
"""Rewrites the DT_RUNPATH (or DT_RPATH) of an ELF64 little-endian file in place.

    set-runpath.py FILE NEW_RUNPATH      e.g. set-runpath.py bin/gem-server '$ORIGIN/../lib'
    set-runpath.py --print FILE          prints the current value ("" when there is none)

The linker gives build/gem-server an absolute RUNPATH to build/server/ops (where
libgem_ops.so is); the container stages the library next to the binary instead. patchelf
is not a gemserve dependency, and the new value is shorter than the build tree's path,
so the string is overwritten where it is in .dynstr and padded with NULs, as chrpath does.
It refuses (exit 1) when the new value is longer, or when another name in .dynstr (a
symbol, a needed library, a version) shares bytes with the old value (linkers merge
string suffixes), since overwriting would change that name too.
"""
import struct
import sys

SHT_DYNSYM, SHT_DYNAMIC = 11, 6
SHT_GNU_VERDEF, SHT_GNU_VERNEED = 0x6FFFFFFD, 0x6FFFFFFE
DT_NULL, DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 14, 15, 29
DT_AUXILIARY, DT_FILTER = 0x7FFFFFFD, 0x7FFFFFFF
STRING_TAGS = {DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH, DT_AUXILIARY, DT_FILTER}


class ElfError(Exception):
    pass


def sections(data):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ElfError("not an ELF64 little-endian file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    result = []
    for i in range(shnum):
        (name, kind, flags, addr, offset, size, link, info, align,
         entsize) = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
        result.append({"type": kind, "offset": offset, "size": size, "link": link,
                       "entsize": entsize, "info": info})
    return result


def dynamic_entries(data, section):
    entries = []
    for at in range(section["offset"], section["offset"] + section["size"], 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    return entries


def string_references(data, all_sections, dynstr_index):
    """Every offset into the dynamic string table that something in the file uses."""
    refs = []
    for s in all_sections:
        if s["link"] != dynstr_index:
            continue
        if s["type"] == SHT_DYNAMIC:
            refs += [(tag, value) for tag, value in dynamic_entries(data, s) if tag in STRING_TAGS]
        elif s["type"] == SHT_DYNSYM:
            for at in range(s["offset"], s["offset"] + s["size"], s["entsize"] or 24):
                refs.append(("symbol", struct.unpack_from("<I", data, at)[0]))
        elif s["type"] == SHT_GNU_VERNEED:
            at = s["offset"]
            for _ in range(s["info"]):
                _, count, file_name, aux, following = struct.unpack_from("<HHIIi", data, at)
                refs.append(("verneed", file_name))
                aux_at = at + aux
                for _ in range(count):
                    _, _, _, name, aux_next = struct.unpack_from("<IHHII", data, aux_at)
                    refs.append(("vernaux", name))
                    aux_at += aux_next
                at += following
        elif s["type"] == SHT_GNU_VERDEF:
            at = s["offset"]
            for _ in range(s["info"]):
                _, _, _, count, _, aux, following = struct.unpack_from("<HHHHIII", data, at)
                aux_at = at + aux
                for _ in range(count):
                    name, aux_next = struct.unpack_from("<II", data, aux_at)
                    refs.append(("verdaux", name))
                    aux_at += aux_next
                at += following
    return refs


def locate_runpath(data):
    """(file offset of the string, its length, its value) or None."""
    all_sections = sections(data)
    for s in all_sections:
        if s["type"] != SHT_DYNAMIC:
            continue
        dynstr = all_sections[s["link"]]
        entries = dynamic_entries(data, s)
        for tag in (DT_RUNPATH, DT_RPATH):
            for entry_tag, value in entries:
                if entry_tag != tag:
                    continue
                start = dynstr["offset"] + value
                end = data.index(b"\0", start)
                old = data[start:end].decode()
                refs = string_references(data, all_sections, s["link"])
                refs.remove((tag, value))  # the runpath entry itself
                for kind, ref in refs:
                    if value <= ref < value + len(old):
                        raise ElfError(f"the {kind} name at .dynstr+{ref} shares bytes with "
                                       f"the runpath {old!r}; cannot overwrite it in place")
                return start, len(old), old
    return None


def main(argv):
    if len(argv) == 3 and argv[1] == "--print":
        with open(argv[2], "rb") as f:
            found = locate_runpath(f.read())
        print(found[2] if found else "")
        return 0
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path, new = argv[1], argv[2].encode()
    with open(path, "rb") as f:
        data = bytearray(f.read())
    found = locate_runpath(bytes(data))
    if found is None:
        raise ElfError(f"{path} has no RUNPATH or RPATH to rewrite")
    start, length, old = found
    if len(new) > length:
        raise ElfError(f"{path}: new runpath {argv[2]!r} is longer than the old {old!r} "
                       f"({len(new)} > {length} bytes); build in a directory with a longer path")
    data[start:start + length] = new + b"\0" * (length - len(new))
    with open(path, "r+b") as f:
        f.write(data)
    print(f"set-runpath: {path}: {old!r} -> {argv[2]!r}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (ElfError, OSError, ValueError, struct.error) as error:
        print(f"set-runpath: {error}", file=sys.stderr)
        sys.exit(1)
