#!/usr/bin/env python3
"""Jupyter's terminado (Debian's python3-terminado) as a terminal peer for
tests/bench/term_run: one bash per WebSocket at /websocket on 127.0.0.1.
Prints "ready PORT" once listening. Protocol: JSON arrays ["stdin", s],
["stdout", s], ["set_size", rows, cols]."""
import socket
import sys

import tornado.ioloop
import tornado.web
from terminado import TermSocket, UniqueTermManager

port = int(sys.argv[1])
manager = UniqueTermManager(shell_command=["bash", "-l"])
app = tornado.web.Application([(r"/websocket", TermSocket, {"term_manager": manager})],
                              websocket_max_message_size=64 << 20)
app.listen(port, "127.0.0.1")
print("ready %d" % port, flush=True)
tornado.ioloop.IOLoop.current().start()
