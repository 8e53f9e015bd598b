#!/usr/bin/env python3
"""Attributes every byte of a firmware's code to the source file it came from, inlining included.

`llvm-objdump -d -l` marks each run of instructions with the source line of the innermost inlined
frame; summing instruction sizes per file shows what is big even when everything was inlined into
`main` (which `llvm-nm --size-sort` cannot split). Usage: attribute.py OBJDUMP ELF [TOP]
"""
import collections, re, subprocess, sys

objdump, elf = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
out = subprocess.run([objdump, "-d", "-l", "--no-show-raw-insn", elf], capture_output=True, text=True, check=True).stdout
loc_re = re.compile(r"^; (/.*?):(\d+)")
ins_re = re.compile(r"^\s*([0-9a-f]+):")
sym_re = re.compile(r"^[0-9a-f]+ <(.*)>:")
by_file = collections.Counter()
current, last_addr, last_key = "?", None, None
for line in out.splitlines():
    if sym_re.match(line):
        current = "?"
        continue
    m = loc_re.match(line)
    if m:
        path = m.group(1)
        for marker in ("/registry/src/", "/rustlib/src/rust/library/", "/work/main/"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        path = re.sub(r"^index\.crates\.io-[0-9a-f]+/", "", path)
        path = re.sub(r"^/rustc/[0-9a-f]+/library/", "std:", path)
        current = path
        continue
    m = ins_re.match(line)
    if m:
        addr = int(m.group(1), 16)
        if last_addr is not None:
            by_file[last_key] += addr - last_addr
        last_addr, last_key = addr, current
total = sum(by_file.values())
print(f"{total} bytes of code attributed")
for f, n in by_file.most_common(top):
    print(f"{n:7d}  {f}")
