"""FastMCP's proxy in front of the bench upstream, reusing one backend session.

Usage: python bench/fastmcp_proxy.py UPSTREAM_URL PORT
"""
import asyncio
import sys

from fastmcp import Client
from fastmcp.server import create_proxy


async def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    backend = Client(upstream)
    # Connected before the proxy starts, so every proxied call reuses this one session.
    async with backend:
        proxy = create_proxy(backend, name="fastmcp-proxy")
        await proxy.run_async(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="warning")


asyncio.run(main())
