#!/usr/bin/env python3
# Writes libfastnet.so's version script from calls.def: the intercepted names are the
# only symbols the library exports. Usage: gen_map.py calls.def out.map
import re
import sys

names = []
with open(sys.argv[1]) as f:
    for line in f:
        m = re.match(r'\s*FASTNET_CALL\(\s*[^,]+,\s*(\w+)\s*,', line)
        if m:
            names.append(m.group(1))
with open(sys.argv[2], 'w') as out:
    out.write('/* generated from interpose/calls.def */\n{\n  global:\n')
    for n in names:
        out.write(f'    {n};\n')
    out.write('  local:\n    *;\n};\n')
