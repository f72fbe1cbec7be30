"""Realistic work servers for the Code Mode tests: an issue tracker and a
drive, with tools shaped like the ones teams put behind a portal.

Usage: python work_peer.py PORT [http|sse]   (PEER_KIND=tracker|drive)

tracker: search_issues (JQL subset), get_issue, update_issue, create_issue,
delete_issue. drive: search_files, get_content, share_file. Data lives in
memory, so a test can read back what a call changed.
"""

from __future__ import annotations

import os
import re
import sys

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

READ = {"readOnlyHint": True}
WRITE = {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": True}
DESTROY = {"readOnlyHint": False, "destructiveHint": True}

KIND = os.environ.get("PEER_KIND", "tracker")
mcp = FastMCP(f"{KIND}-peer")

ISSUES = {
    "BLOG-1": {"key": "BLOG-1", "project": "BLOG", "status": "In Progress", "summary": "Launch post",
               "description": "Draft the launch post."},
    "BLOG-2": {"key": "BLOG-2", "project": "BLOG", "status": "Done", "summary": "Style guide", "description": "Done."},
    "OPS-7": {"key": "OPS-7", "project": "OPS", "status": "In Progress", "summary": "Rotate keys", "description": "Quarterly."},
}
FILES = {
    "1aBcDeFgHiJk": {"fileId": "1aBcDeFgHiJk", "title": "Launch notes", "content": "Key points: speed, governance, audit."},
    "2xYz": {"fileId": "2xYz", "title": "Budget", "content": "Q3 budget: 42k."},
}

CLAUSE = re.compile(r'\s*(\w+)\s*=\s*("([^"]*)"|(\S+))\s*')


def matches(issue: dict, jql: str) -> bool:
    for part in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
        found = CLAUSE.fullmatch(part)
        if not found:
            raise ToolError(f"unsupported JQL: {part!r}")
        field, value = found.group(1).lower(), found.group(3) or found.group(4)
        if str(issue.get(field, "")).lower() != value.lower():
            return False
    return True


if KIND == "tracker":
    @mcp.tool(annotations=READ)
    def search_issues(jql: str, max_results: int = 50) -> list[dict]:
        """Search issues with JQL (field = value clauses joined by AND)."""
        return [dict(issue) for issue in ISSUES.values() if matches(issue, jql)][:max_results]

    @mcp.tool(annotations=READ)
    def get_issue(issueKey: str) -> dict:
        """One issue by key."""
        if issueKey not in ISSUES:
            raise ToolError(f"no issue {issueKey}")
        return dict(ISSUES[issueKey])

    @mcp.tool(annotations=WRITE)
    def update_issue(issueKey: str, fields: dict) -> dict:
        """Change fields of an issue (summary, description, status)."""
        if issueKey not in ISSUES:
            raise ToolError(f"no issue {issueKey}")
        ISSUES[issueKey].update({k: v for k, v in fields.items() if k in ("summary", "description", "status")})
        return dict(ISSUES[issueKey])

    @mcp.tool(annotations=WRITE)
    def create_issue(project: str, summary: str) -> dict:
        """Create an issue."""
        key = f"{project}-{len(ISSUES) + 1}"
        ISSUES[key] = {"key": key, "project": project, "status": "Open", "summary": summary, "description": ""}
        return dict(ISSUES[key])

    @mcp.tool(annotations=DESTROY)
    def delete_issue(issueKey: str) -> str:
        """Delete an issue for good."""
        ISSUES.pop(issueKey, None)
        return f"deleted {issueKey}"
else:
    @mcp.tool(annotations=READ)
    def search_files(query: str) -> list[dict]:
        """Files whose title contains the query."""
        return [{"fileId": f["fileId"], "title": f["title"]} for f in FILES.values() if query.lower() in f["title"].lower()]

    @mcp.tool(annotations=READ)
    def get_content(fileId: str) -> dict:
        """A file's text content."""
        if fileId not in FILES:
            raise ToolError(f"no file {fileId}")
        return dict(FILES[fileId])

    @mcp.tool(annotations=WRITE)
    def share_file(fileId: str, email: str) -> str:
        """Share a file with someone."""
        return f"shared {fileId} with {email}"


if __name__ == "__main__":
    port = int(sys.argv[1])
    transport = sys.argv[2] if len(sys.argv) > 2 else "http"
    mcp.run(transport=transport, host="127.0.0.1", port=port, show_banner=False)
