#!/usr/bin/env python3
"""Writes a C file defining ws_page_html (the demo page) from an HTML file.

The page lives once, in container/demo/index.html: the Worker serves it and
every server's GET / serves this copy of it.
"""
import sys

src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
rows = [", ".join("0x%02x" % b for b in data[i:i + 16]) for i in range(0, len(data), 16)]
with open(dst, "w") as out:
    out.write("/* Generated from %s by common/embed.py: edit that file. */\n" % src.split("/")[-1])
    out.write('#include "page.h"\n\n')
    out.write("const char ws_page_html[] = {\n\t%s,\n\t0x00\n};\n\n" % ",\n\t".join(rows))
    out.write("const size_t ws_page_html_len = %d;\n" % len(data))
