"""FastMCP's proxy in front of the bench upstream, reusing one backend client.

Usage: python bench/fastmcp_proxy.py UPSTREAM_URL PORT
"""
import sys

from fastmcp import Client
from fastmcp.server import create_proxy

upstream, port = sys.argv[1], int(sys.argv[2])
proxy = create_proxy(Client(upstream), name="fastmcp-proxy")
proxy.run(transport="http", host="127.0.0.1", port=port, show_banner=False, log_level="warning")
