"""The raw RFC 6455 client of the integration tests, under the name they
use: tests/lib/wsclient.py (frames, RawClient, connect, close/EOF
assertions) and tests/lib/http.py (http, upgrade_status, http_request)."""

from lib.http import HttpResponse, http, http_request, parse_head, upgrade_status  # noqa: F401
from lib.wsclient import *  # noqa: F401,F403
