"""Fixtures: peers (fastmcp servers on their own ports), portals (the built
binary with a generated configuration), a scratch git repository."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import PeerProcess, PortalProcess, stdio_server, time_server


@pytest.fixture(scope="session")
def git_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("config", "user.email", "tester@example.com")
    git("config", "user.name", "Tester")
    (repo / "README.md").write_text("hello\n")
    git("add", "README.md")
    git("commit", "-q", "-m", "first commit")
    (repo / "README.md").write_text("hello\nchanged\n")
    (repo / "untracked.txt").write_text("new\n")
    return repo


@pytest.fixture(scope="session")
def http_peer() -> Iterator[PeerProcess]:
    peer = PeerProcess("feature_peer.py", "http").start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def sse_peer() -> Iterator[PeerProcess]:
    peer = PeerProcess("feature_peer.py", "sse").start()
    try:
        yield peer
    finally:
        peer.stop()


# The shared portal. Tests that could disturb a server (hang it, restart it,
# stall it) get their own portal and peer instead.
MAIN_TOOL_SETTINGS = {
    "time_convert_time": {"enabled": False},
    "peer_echo": {"alias": "echo2"},
    "notes_create_note": {"allow_write": True},
}


@pytest.fixture(scope="session")
def main_portal(tmp_path_factory, git_repo, http_peer, sse_peer) -> Iterator[PortalProcess]:
    servers = [
        time_server(),
        stdio_server("git", "-m", "mcp_server_git", "--repository", str(git_repo)),
        {"id": "peer", "url": http_peer.url, "transport": "auto"},
        {"id": "speer", "url": sse_peer.url, "transport": "auto"},
        {"id": "notes", "builtin": "notes"},
    ]
    portals = [
        {"id": "default", "servers": ["time", "git", "peer", "speer", "notes"], "tools": MAIN_TOOL_SETTINGS},
        {"id": "full", "servers": ["time", "git", "peer", "notes"], "allow_writes": True},
    ]
    portal = PortalProcess(tmp_path_factory.mktemp("main-portal"), servers, portals).start()
    try:
        yield portal
    finally:
        portal.stop()


@pytest.fixture
def make_peer() -> Iterator[Callable[..., PeerProcess]]:
    """Starts peers for one test and stops them afterwards."""
    peers: list[PeerProcess] = []

    def make(script: str = "feature_peer.py", transport: str = "http", **kwargs) -> PeerProcess:
        peer = PeerProcess(script, transport, **kwargs).start()
        peers.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in peers:
            peer.stop()


@pytest.fixture
def make_portal(tmp_path) -> Iterator[Callable[..., PortalProcess]]:
    """Starts portals for one test; at the end each must exit cleanly on SIGTERM."""
    portals: list[PortalProcess] = []

    def make(servers: list[dict], portals_: list[dict] | None = None, start_timeout: float = 45, **kwargs) -> PortalProcess:
        ids = [server["id"] for server in servers]
        definition = portals_ or [{"id": "default", "servers": ids, "allow_writes": True}]
        portal = PortalProcess(tmp_path / f"portal{len(portals)}", servers, definition, **kwargs)
        portals.append(portal)
        portal.start(start_timeout)
        return portal

    try:
        yield make
    finally:
        errors = []
        for portal in portals:
            try:
                portal.stop()
            except AssertionError as error:
                errors.append(str(error))
    assert not errors, "\n".join(errors)
