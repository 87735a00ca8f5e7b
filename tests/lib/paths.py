"""Where things are: the repository, the build directory, the binaries.

Every default is computed from this file's location, never written as an
absolute path: the tree may be checked out anywhere.
"""

import os

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)

# the build directory (tests/run-suite sets it to meson's); <repo>/build
# otherwise. A relative WS_BIN_DIR is taken from the current directory.
BIN_DIR = os.path.abspath(os.environ.get("WS_BIN_DIR") or os.path.join(REPO, "build"))


def build_path(*parts):
    """A path inside the build directory."""
    return os.path.join(BIN_DIR, *parts)


def binary_path(name):
    """Where the build puts a server: servers/<short>/<name>, where ws-echo's
    short name is echo."""
    short = name[3:] if name.startswith("ws-") else name
    return build_path("servers", short, name)


def require(path, what=None):
    """path, when it is an executable file; otherwise skips the test."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip("%s is not built: %s is missing (build it, or point WS_BIN_DIR "
                    "at the build directory)" % (what or os.path.basename(path), path))
    return path


def require_binary(name):
    """The path of server `name` (ws-echo, ws-rpc...), or skips the test."""
    return require(binary_path(name), name)
