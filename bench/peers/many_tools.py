#!/usr/bin/env python3
"""An MCP server with many realistic tools, for the Code Mode token benchmark.

Usage: TOOL_COUNT=N TOOL_SEED=name python bench/peers/many_tools.py PORT
       TOOL_COUNT=N TOOL_SEED=name python bench/peers/many_tools.py --dump   (prints the tools as JSON)

Serves N tools over Streamable HTTP at http://127.0.0.1:PORT/mcp. The tools
are shaped like the ones real work servers expose (issue tracker, wiki, code
host, drive, chat, CRM, ...): names such as search_issues or create_page,
a few sentences of description, and input schemas with property
descriptions, enums, defaults, bounds and nested objects. They are generated
deterministically from templates, domain x resource x verb, so N can be
anything up to several thousand without a repeated name; past the catalog,
admin_/org_/... variants of the same tools follow. TOOL_SEED names the domain
the server starts with (tracker, wiki, code, drive, chat, crm, ...), so four
peers seeded tracker, wiki, code and drive look like four different servers;
other seeds start at a domain picked from the seed's hash. A definition
averages about 180 o200k tokens, what real servers' tools cost. Every call
answers with a short text.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

from fastmcp import FastMCP
from fastmcp.tools import Tool, ToolResult
from mcp.types import ToolAnnotations

READ = ToolAnnotations(readOnlyHint=True)
WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
EDIT = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True)
DESTROY = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)

# Property schemas resources pick from; "{noun}" becomes the resource's name.
FIELDS: dict[str, dict[str, Any]] = {
    "summary": {"type": "string", "maxLength": 255,
                "description": "One-line summary of the {noun}, shown in lists and notifications."},
    "title": {"type": "string", "maxLength": 255, "description": "Title of the {noun}. Must be unique within its parent."},
    "name": {"type": "string", "maxLength": 128, "description": "Display name of the {noun}."},
    "description": {"type": "string",
                    "description": "Longer description in Markdown. Mentions like @jane.doe notify the user."},
    "body": {"type": "string", "description": "Content of the {noun} in the format given by body_format."},
    "body_format": {"type": "string", "enum": ["markdown", "storage", "wiki", "plain"], "default": "markdown",
                    "description": "Markup used in body: storage is the XHTML-based storage format."},
    "status": {"type": "string", "enum": ["open", "in_progress", "blocked", "done", "closed"],
               "description": "Workflow status. Moving to done or closed sets the resolution date."},
    "priority": {"type": "string", "enum": ["highest", "high", "medium", "low", "lowest"], "default": "medium",
                 "description": "Priority of the {noun}."},
    "assignee": {"type": "object", "description": "Who owns the {noun}: account_id or email; null unassigns.",
                 "properties": {"account_id": {"type": "string", "description": "Account id."},
                                "email": {"type": "string", "format": "email"}}},
    "owner": {"type": "string", "description": "Account id or email address of the owner of the {noun}."},
    "labels": {"type": "array", "items": {"type": "string", "pattern": "^[^\\s]+$"},
               "description": "Labels without spaces. Replaces the labels the {noun} has."},
    "due_date": {"type": "string", "format": "date", "description": "Due date as YYYY-MM-DD, in the site's time zone."},
    "start_date": {"type": "string", "format": "date-time", "description": "Start as an ISO 8601 date-time with offset."},
    "end_date": {"type": "string", "format": "date-time", "description": "End as an ISO 8601 date-time; after start_date."},
    "visibility": {"type": "string", "enum": ["private", "internal", "public"], "default": "private",
                   "description": "Who can see the {noun}."},
    "parent_id": {"type": "string", "description": "Id of the parent; omit to create at the top level."},
    "custom_fields": {"type": "object", "additionalProperties": True,
                      "description": "Custom field values by field id, e.g. {\"customfield_10016\": 5}."},
    "amount": {"type": "object", "description": "Monetary value.",
               "properties": {"value": {"type": "number", "minimum": 0},
                              "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "default": "USD"}},
               "required": ["value"]},
    "email": {"type": "string", "format": "email", "description": "Primary email address of the {noun}."},
    "phone": {"type": "string", "description": "Phone number in E.164 format, e.g. +14155550123."},
    "stage": {"type": "string", "enum": ["lead", "qualified", "proposal", "negotiation", "won", "lost"],
              "description": "Pipeline stage. won and lost close the {noun}."},
    "mime_type": {"type": "string", "description": "MIME type, e.g. application/pdf; detected from content when omitted."},
    "content_base64": {"type": "string", "contentEncoding": "base64", "description": "File content, base64-encoded, up to 10 MB."},
    "topic": {"type": "string", "maxLength": 250, "description": "Topic shown in the {noun} header."},
    "text": {"type": "string", "description": "Message text. Supports mrkdwn: *bold*, _italic_, <url|label>."},
    "thread_ts": {"type": "string", "description": "Timestamp of the parent message to reply in its thread."},
    "branch": {"type": "string", "description": "Branch name; defaults to the repository's default branch."},
    "base": {"type": "string", "description": "Branch the changes are merged into, e.g. main."},
    "draft": {"type": "boolean", "default": False, "description": "Create as a draft that cannot be merged or sent yet."},
    "reviewers": {"type": "array", "items": {"type": "string"}, "maxItems": 15,
                  "description": "Usernames asked to review."},
    "severity": {"type": "string", "enum": ["critical", "high", "warning", "info"], "description": "Severity level."},
    "query_expr": {"type": "string", "description": "Query in the metrics query language, e.g. avg:system.cpu.user{env:prod}."},
    "threshold": {"type": "object", "description": "When the {noun} triggers.",
                  "properties": {"critical": {"type": "number"}, "warning": {"type": "number"},
                                 "window": {"type": "string", "enum": ["1m", "5m", "15m", "1h", "1d"], "default": "5m"}},
                  "required": ["critical"]},
    "attendees": {"type": "array", "description": "People invited.",
                  "items": {"type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                                             "optional": {"type": "boolean", "default": False}},
                            "required": ["email"]}},
    "time_zone": {"type": "string", "description": "IANA time zone, e.g. Europe/Berlin. Defaults to the calendar's."},
    "recipients": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1,
                   "description": "Email addresses in To."},
    "subject": {"type": "string", "maxLength": 998, "description": "Subject line."},
    "schedule": {"type": "string", "description": "Cron expression in UTC, e.g. 0 6 * * 1-5."},
    "variables": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "Variables passed to the run, by name."},
    "quantity": {"type": "integer", "minimum": 1, "default": 1, "description": "Quantity."},
    "department": {"type": "string", "description": "Department name, as in the org chart."},
    "manager_id": {"type": "string", "description": "Employee id of the direct manager."},
}

# Sub-resources: what hangs off a resource, with the fields to create one.
SUBS: dict[str, tuple[str, str, list[str]]] = {
    "comments": ("comment", "comment", ["body", "body_format", "visibility"]),
    "attachments": ("attachment", "attachment", ["name", "mime_type", "content_base64"]),
    "watchers": ("watcher", "watcher", ["owner"]),
    "links": ("link", "link", ["title", "description"]),
    "permissions": ("permission", "permission", ["email", "visibility"]),
    "versions": ("version", "version", ["description"]),
    "labels": ("label", "label", ["name"]),
    "members": ("member", "member", ["email"]),
    "tasks": ("task", "task", ["summary", "assignee", "due_date"]),
    "notes": ("note", "note", ["body"]),
}

# Domains in their fixed order. A resource: singular, plural, human noun,
# (id parameter, its example), container parameter or None, create fields
# (first ones required), search filters, sub-resources.
DOMAINS: dict[str, dict[str, Any]] = {
    "tracker": {"product": "the issue tracker", "query": ("jql", "JQL query, e.g. project = OPS AND status = \"In Progress\" ORDER BY updated DESC."), "resources": [
        ("issue", "issues", "issue", ("issue_key", "OPS-123"), ("project_key", "Project key, e.g. OPS."),
         ["summary", "description", "priority", "assignee", "labels", "due_date", "parent_id", "custom_fields"], ["status", "priority"],
         ["comments", "attachments", "watchers", "links", "labels"]),
        ("project", "projects", "project", ("project_key", "OPS"), None,
         ["name", "description", "owner", "visibility"], ["visibility"], ["members", "versions", "permissions"]),
        ("sprint", "sprints", "sprint", ("sprint_id", "4182"), ("board_id", "Board id, e.g. 42."),
         ["name", "start_date", "end_date", "description"], ["status"], ["tasks", "notes"]),
        ("board", "boards", "board", ("board_id", "42"), ("project_key", "Project key, e.g. OPS."),
         ["name", "visibility", "owner"], ["visibility"], ["members", "permissions"]),
        ("component", "components", "component", ("component_id", "10231"), ("project_key", "Project key, e.g. OPS."),
         ["name", "description", "owner"], [], ["watchers"]),
        ("worklog", "worklogs", "work log entry", ("worklog_id", "88120"), ("issue_key", "Issue key, e.g. OPS-123."),
         ["description", "start_date", "custom_fields"], [], ["notes"]),
    ]},
    "wiki": {"product": "the wiki", "query": ("cql", "CQL query, e.g. space = ENG AND type = page AND text ~ \"runbook\"."), "resources": [
        ("page", "pages", "page", ("page_id", "123456789"), ("space", "Space key, e.g. ENG."),
         ["title", "body", "body_format", "parent_id", "labels", "visibility"], ["status"],
         ["comments", "attachments", "versions", "labels", "watchers", "permissions"]),
        ("space", "spaces", "space", ("space_key", "ENG"), None,
         ["name", "description", "visibility", "owner"], ["visibility"], ["permissions", "members", "labels"]),
        ("blog_post", "blog_posts", "blog post", ("post_id", "987654"), ("space", "Space key, e.g. ENG."),
         ["title", "body", "body_format", "labels"], ["status"], ["comments", "attachments", "versions"]),
        ("template", "templates", "page template", ("template_id", "tmpl-3391"), ("space", "Space key, e.g. ENG."),
         ["name", "body", "body_format", "description"], [], ["versions"]),
        ("whiteboard", "whiteboards", "whiteboard", ("whiteboard_id", "wb-2210"), ("space", "Space key, e.g. ENG."),
         ["title", "parent_id", "visibility"], [], ["comments", "permissions"]),
    ]},
    "code": {"product": "the code host", "query": ("q", "Search qualifiers, e.g. is:open author:octocat label:bug."), "resources": [
        ("pull_request", "pull_requests", "pull request", ("pull_number", "1347"), ("repo", "Repository as owner/name."),
         ["title", "body", "base", "branch", "draft", "reviewers", "labels"], ["status"],
         ["comments", "labels", "watchers", "tasks"]),
        ("repository", "repositories", "repository", ("repo", "acme/api"), ("org", "Organization login, e.g. acme."),
         ["name", "description", "visibility", "branch"], ["visibility"], ["members", "permissions", "labels"]),
        ("branch", "branches", "branch", ("branch", "feature/login"), ("repo", "Repository as owner/name."),
         ["name", "base"], [], ["permissions"]),
        ("release", "releases", "release", ("release_id", "v2.4.0"), ("repo", "Repository as owner/name."),
         ["name", "body", "draft", "branch"], ["status"], ["attachments", "notes"]),
        ("workflow_run", "workflow_runs", "workflow run", ("run_id", "9182736450"), ("repo", "Repository as owner/name."),
         ["branch", "variables"], ["status"], ["attachments", "notes"]),
        ("code_issue", "code_issues", "repository issue", ("issue_number", "5512"), ("repo", "Repository as owner/name."),
         ["title", "body", "assignee", "labels"], ["status"], ["comments", "labels", "links"]),
    ]},
    "drive": {"product": "the drive", "query": ("q", "Drive query, e.g. name contains 'budget' and mimeType = 'application/pdf'."), "resources": [
        ("file", "files", "file", ("file_id", "1aBcDeFgHiJkLmNoP"), ("folder_id", "Folder id; root when omitted."),
         ["name", "mime_type", "content_base64", "description", "parent_id"], ["visibility"],
         ["permissions", "comments", "versions", "labels"]),
        ("folder", "folders", "folder", ("folder_id", "0BxFolderId42"), ("parent_id", "Parent folder id; root when omitted."),
         ["name", "description", "visibility"], ["visibility"], ["permissions", "members"]),
        ("shared_drive", "shared_drives", "shared drive", ("drive_id", "0AFd3shared"), None,
         ["name", "owner", "visibility"], [], ["members", "permissions"]),
        ("spreadsheet", "spreadsheets", "spreadsheet", ("spreadsheet_id", "1SpReAdShEeT"), ("folder_id", "Folder id; root when omitted."),
         ["title", "owner", "custom_fields"], [], ["permissions", "comments", "versions"]),
        ("document", "documents", "document", ("document_id", "1DoCuMeNt"), ("folder_id", "Folder id; root when omitted."),
         ["title", "body", "body_format"], [], ["comments", "versions", "permissions"]),
    ]},
    "chat": {"product": "the chat workspace", "query": ("query", "Search terms with modifiers, e.g. in:#ops from:@jane after:2024-05-01."), "resources": [
        ("message", "messages", "message", ("message_ts", "1716912345.001200"), ("channel", "Channel id, e.g. C0123ABCD."),
         ["text", "thread_ts", "labels"], [], ["links", "notes"]),
        ("channel", "channels", "channel", ("channel", "C0123ABCD"), None,
         ["name", "topic", "visibility", "description"], ["visibility"], ["members", "permissions"]),
        ("user_group", "user_groups", "user group", ("group_id", "S0614TZR7"), None,
         ["name", "description", "owner"], [], ["members"]),
        ("reminder", "reminders", "reminder", ("reminder_id", "Rm12345678"), None,
         ["text", "start_date", "owner"], [], ["notes"]),
        ("bookmark", "bookmarks", "channel bookmark", ("bookmark_id", "Bk0123456"), ("channel", "Channel id, e.g. C0123ABCD."),
         ["title", "description"], [], ["links"]),
    ]},
    "crm": {"product": "the CRM", "query": ("query", "Free text matched against names, emails, domains and notes."), "resources": [
        ("contact", "contacts", "contact", ("contact_id", "0035e00000AbCdE"), None,
         ["name", "email", "phone", "owner", "custom_fields"], ["stage"], ["notes", "tasks", "labels"]),
        ("company", "companies", "company", ("company_id", "0015e00000XyZ12"), None,
         ["name", "owner", "phone", "custom_fields"], [], ["notes", "members", "tasks"]),
        ("deal", "deals", "deal", ("deal_id", "0065e00000Q1w2E"), ("pipeline", "Pipeline id, e.g. default."),
         ["name", "amount", "stage", "owner", "due_date", "custom_fields"], ["stage"], ["notes", "tasks", "attachments"]),
        ("lead", "leads", "lead", ("lead_id", "00Q5e00000LeAd1"), None,
         ["name", "email", "phone", "owner"], ["stage"], ["notes", "tasks"]),
        ("campaign", "campaigns", "campaign", ("campaign_id", "7015e00000CaMp1"), None,
         ["name", "start_date", "end_date", "amount", "owner"], ["status"], ["members", "notes"]),
    ]},
    "calendar": {"product": "the calendar", "query": ("q", "Free text matched against summary, description, location and attendees."), "resources": [
        ("event", "events", "event", ("event_id", "7k3q9e1m0v"), ("calendar_id", "Calendar id; primary is the user's own."),
         ["summary", "start_date", "end_date", "attendees", "time_zone", "description", "visibility"], ["status"],
         ["attachments", "notes"]),
        ("calendar", "calendars", "calendar", ("calendar_id", "team-ops@group.calendar"), None,
         ["summary", "description", "time_zone"], [], ["permissions", "members"]),
        ("room", "rooms", "meeting room", ("room_id", "room-berlin-4f"), None, ["name", "description"], [], ["permissions"]),
    ]},
    "mail": {"product": "the mailbox", "query": ("q", "Mail search, e.g. from:billing@acme.com has:attachment newer_than:7d."), "resources": [
        ("email", "emails", "email", ("email_id", "18f3c2a9b7d4e001"), None,
         ["recipients", "subject", "body", "body_format"], [], ["attachments", "labels"]),
        ("draft", "drafts", "draft", ("draft_id", "r-5829183"), None, ["recipients", "subject", "body"], [], ["attachments"]),
        ("mail_filter", "mail_filters", "mail filter", ("filter_id", "ANe1Bmj"), None, ["name", "description"], [], []),
    ]},
    "ci": {"product": "the CI service", "query": ("query", "Free text matched against pipeline names, branches and commit messages."), "resources": [
        ("pipeline", "pipelines", "pipeline", ("pipeline_id", "pl-40213"), ("project_slug", "Project slug, e.g. gh/acme/api."),
         ["name", "branch", "variables", "schedule"], ["status"], ["notes", "attachments"]),
        ("job", "jobs", "job", ("job_id", "j-9921344"), ("pipeline_id", "Pipeline id, e.g. pl-40213."),
         ["name", "variables"], ["status"], ["attachments", "notes"]),
        ("environment", "environments", "deployment environment", ("environment", "production"), ("project_slug", "Project slug, e.g. gh/acme/api."),
         ["name", "description", "variables"], [], ["permissions", "members"]),
    ]},
    "monitoring": {"product": "the monitoring service", "query": ("query", "Facet query, e.g. service:checkout env:prod status:alert."), "resources": [
        ("monitor", "monitors", "monitor", ("monitor_id", "12345678"), None,
         ["name", "query_expr", "threshold", "severity", "labels"], ["severity"], ["notes", "watchers"]),
        ("incident", "incidents", "incident", ("incident_id", "INC-2291"), None,
         ["title", "severity", "description", "assignee"], ["severity", "status"], ["notes", "tasks", "attachments", "watchers"]),
        ("dashboard", "dashboards", "dashboard", ("dashboard_id", "abc-def-123"), None,
         ["title", "description", "visibility"], [], ["permissions", "versions"]),
        ("alert", "alerts", "alert", ("alert_id", "al-55812"), None, ["severity", "description"], ["severity"], ["notes"]),
    ]},
    "billing": {"product": "the billing system", "query": ("query", "Search syntax, e.g. email:'jane@acme.com' AND status:'active'."), "resources": [
        ("invoice", "invoices", "invoice", ("invoice_id", "in_1NvZ2v2eZvKYlo2C"), ("customer_id", "Customer id, e.g. cus_NffrFeUfNV2Hib."),
         ["amount", "due_date", "description", "custom_fields"], ["status"], ["notes", "attachments"]),
        ("subscription", "subscriptions", "subscription", ("subscription_id", "sub_1MowQVLkdIwHu7ix"), ("customer_id", "Customer id."),
         ["quantity", "start_date", "custom_fields"], ["status"], ["notes"]),
        ("customer", "customers", "customer", ("customer_id", "cus_NffrFeUfNV2Hib"), None,
         ["name", "email", "phone", "custom_fields"], [], ["notes", "tasks"]),
    ]},
    "hr": {"product": "the HR system", "query": ("query", "Free text matched against names, titles and departments."), "resources": [
        ("employee", "employees", "employee", ("employee_id", "E-10442"), None,
         ["name", "email", "department", "manager_id", "start_date"], [], ["notes", "tasks", "attachments"]),
        ("time_off_request", "time_off_requests", "time-off request", ("request_id", "TO-7731"), ("employee_id", "Employee id, e.g. E-10442."),
         ["start_date", "end_date", "description"], ["status"], ["notes"]),
        ("position", "positions", "open position", ("position_id", "P-3310"), None,
         ["title", "department", "description", "manager_id"], ["status"], ["members", "notes"]),
    ]},
}

ORDERS = ["updated_desc", "updated_asc", "created_desc", "created_asc", "relevance"]
EXPANDS = ["history", "permissions", "children", "metadata", "rendered"]


def prop(field: str, noun: str) -> dict[str, Any]:
    """A field's schema with the resource's noun in its description."""
    return json.loads(json.dumps(FIELDS[field]).replace("{noun}", noun))


def article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def resource_tools(domain: dict[str, Any], res: tuple) -> list[tuple[int, str, str, dict, ToolAnnotations]]:
    """Every tool of one resource: (tier, name, description, input schema, annotations).
    Lower tiers are the tools every server of the kind has; they come first."""
    s, p, noun, (id_name, example), container, fields, filters, subs = res
    product = domain["product"]
    qname, qdesc = domain["query"]
    key = {id_name: {"type": "string", "description": f"Id of the {noun}, e.g. {example}."}}
    cont = {}
    if container:
        cont = {container[0]: {"type": "string", "description": container[1]}}
    nouns = noun + ("es" if noun.endswith(("s", "sh", "ch")) else "s")
    a_noun = article(noun)
    paging = {
        "max_results": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25,
                        "description": "Page size."},
        "page_token": {"type": "string", "description": "next_page_token of the previous page."},
    }
    creates = {f: prop(f, noun) for f in fields}
    required = list(container[:1]) if container else []
    required += fields[:1]
    tools = []

    search_props = {qname: {"type": "string", "description": qdesc}, **cont}
    for f in filters:
        search_props[f] = {**prop(f, noun), "description": f"Only {nouns} with this {f.replace('_', ' ')}."}
        search_props[f].pop("default", None)
    search_props.update(paging)
    search_props["order_by"] = {"type": "string", "enum": ORDERS, "default": "updated_desc", "description": "Sort order of the results."}
    search_props["fields"] = {"type": "array", "items": {"type": "string"},
                              "description": "Fields to return; all when omitted."}
    tools.append((0, f"search_{p}",
                  f"Search {nouns} in {product} with a query. Returns a page of matching {nouns} with their key fields and "
                  f"next_page_token when more remain. Use get_{s} to read one {noun} in full.",
                  obj(search_props, [qname]), READ))
    tools.append((0, f"get_{s}",
                  f"Get one {noun} by id with all its fields. expand adds related data left out by default.",
                  obj({**key, "expand": {"type": "array", "items": {"type": "string", "enum": EXPANDS},
                                         "description": "Related data to include."},
                       "fields": {"type": "array", "items": {"type": "string"}, "description": "Limit the answer to these fields."}},
                      [id_name]), READ))
    tools.append((0, f"create_{s}",
                  f"Create {a_noun} in {product}. Returns the new {noun} with its id and URL. "
                  f"Fields the {noun} type does not allow are rejected with the list of allowed fields.",
                  obj({**cont, **creates, "notify": {"type": "boolean", "default": True,
                                                     "description": "Send notifications to watchers and mentioned users."}},
                      required), WRITE))
    tools.append((0, f"update_{s}",
                  f"Update fields of {a_noun}. Only the fields given change; null clears a field. Returns the updated {noun}.",
                  obj({**key, "fields": obj({f: prop(f, noun) for f in fields[:5]}, []),
                       "notify": {"type": "boolean", "default": True, "description": "Send notifications about the change."}},
                      [id_name, "fields"]), EDIT))
    tools.append((1, f"delete_{s}",
                  f"Delete {a_noun} permanently. Its {' and '.join(subs[:2]) or 'data'} go with it; this cannot be undone. "
                  f"Prefer archive_{s} when the {noun} may be needed again.",
                  obj({**key, "force": {"type": "boolean", "default": False,
                                        "description": f"Delete even when other items still reference the {noun}."}},
                      [id_name]), DESTROY))
    tools.append((1, f"list_{p}",
                  f"List {nouns}{' in a ' + container[0].replace('_', ' ').removesuffix(' key').removesuffix(' id') if container else ''}, "
                  f"newest first, one page at a time. Use search_{p} to filter by content.",
                  obj({**cont, **paging, "order_by": {"type": "string", "enum": ORDERS[:4], "default": "created_desc",
                                                      "description": "Sort order."},
                       "include_archived": {"type": "boolean", "default": False, "description": f"Include archived {nouns}."}},
                      required[:1] if container else []), READ))
    for sub in subs:
        sub_s, sub_noun, sub_fields = SUBS[sub]
        tools.append((2, f"list_{s}_{sub}",
                      f"List the {sub_noun}s of {a_noun}, oldest first, with author and timestamps.",
                      obj({**key, **paging, "since": {"type": "string", "format": "date-time",
                                                      "description": f"Only {sub_noun}s changed after this time."}},
                          [id_name]), READ))
        tools.append((2, f"add_{s}_{sub_s}",
                      f"Add {article(sub_noun)} to {a_noun}; needs edit permission on the {noun}. Returns the new {sub_noun}.",
                      obj({**key, **{f: prop(f, sub_noun) for f in sub_fields}}, [id_name, sub_fields[0]]), WRITE))
        tools.append((3, f"remove_{s}_{sub_s}",
                      f"Remove {article(sub_noun)} from {a_noun}. Removing one that is already gone succeeds; "
                      f"removing one someone else added needs admin permission.",
                      obj({**key, f"{sub_s}_id": {"type": "string", "description": f"Id of the {sub_noun}."},
                           "notify": {"type": "boolean", "default": False, "description": f"Tell the {noun}'s watchers."}},
                          [id_name, f"{sub_s}_id"]), DESTROY))
        tools.append((4, f"update_{s}_{sub_s}",
                      f"Change {article(sub_noun)} of {a_noun}. Only the fields given change.",
                      obj({**key, f"{sub_s}_id": {"type": "string", "description": f"Id of the {sub_noun}."},
                           **{f: prop(f, sub_noun) for f in sub_fields}}, [id_name, f"{sub_s}_id"]), EDIT))
    tools.append((3, f"archive_{s}",
                  f"Archive {a_noun}: it leaves lists and search but keeps its history and can be restored with restore_{s}.",
                  obj({**key, "reason": {"type": "string", "description": "Why, for the audit log."},
                       "notify": {"type": "boolean", "default": True, "description": f"Tell the {noun}'s watchers."}}, [id_name]), EDIT))
    tools.append((3, f"restore_{s}",
                  f"Restore an archived {noun} with its {' and '.join(subs[:2]) or 'data'}, to where it was or to target. "
                  f"Fails when a live {noun} took its name meanwhile.",
                  obj({**key, "target": {"type": "string", "description": "Where to restore it; its old place when omitted."},
                       "notify": {"type": "boolean", "default": True, "description": f"Tell the {noun}'s watchers."}}, [id_name]), EDIT))
    tools.append((4, f"export_{p}",
                  f"Export {nouns} matching a query as a file. Large exports run in the background and answer with a job id to poll.",
                  obj({qname: {"type": "string", "description": qdesc}, **cont,
                       "format": {"type": "string", "enum": ["csv", "json", "xlsx", "pdf"], "default": "csv", "description": "File format."},
                       "columns": {"type": "array", "items": {"type": "string"}, "description": "Fields to export, in order."}},
                      [qname]), READ))
    tools.append((4, f"bulk_update_{p}",
                  f"Update up to 100 {nouns} in one request. Each entry is applied on its own; the answer lists the ones that failed and why.",
                  obj({"updates": {"type": "array", "minItems": 1, "maxItems": 100, "description": "Changes, one per item.",
                                   "items": obj({**key, "fields": obj({f: prop(f, noun) for f in fields[:3]}, [])}, [id_name, "fields"])},
                       "notify": {"type": "boolean", "default": False, "description": "Send notifications about the changes."}},
                      ["updates"]), EDIT))
    tools.append((5, f"get_{s}_history",
                  f"The change history of {a_noun}: who changed which field from what to what, newest first.",
                  obj({**key, **paging, "field": {"type": "string", "description": "Only changes to this field."},
                       "since": {"type": "string", "format": "date-time", "description": "Only changes after this time."}}, [id_name]), READ))
    tools.append((5, f"move_{s}",
                  f"Move {a_noun} to another {container[0].replace('_', ' ') if container else 'parent'}, keeping its id.",
                  obj({**key, "target": {"type": "string", "description": "Where to move it."},
                       "position": {"type": "object", "description": "Where among its new siblings; last when omitted.",
                                    "properties": {"before_id": {"type": "string"}, "after_id": {"type": "string"}}},
                       "keep_permissions": {"type": "boolean", "default": True, "description": "Keep the current permissions."}},
                      [id_name, "target"]), EDIT))
    return tools


def catalog(seed: str) -> list[tuple[str, str, dict, ToolAnnotations]]:
    """The whole catalog for a seed, in order: the seed's domain first, then the
    others; within a domain, tier by tier over its resources."""
    names = list(DOMAINS)
    start = names.index(seed) if seed in DOMAINS else int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(names)
    out = []
    for domain_name in names[start:] + names[:start]:
        domain = DOMAINS[domain_name]
        per_resource = [resource_tools(domain, res) for res in domain["resources"]]
        # The main resource's everyday tools first (search_issues, get_issue, ...,
        # add_issue_comment), as a server of the kind starts; then tier by tier.
        primary = [t for t in per_resource[0] if t[0] <= 2]
        out += [t[1:] for t in primary]
        for tier in range(6):
            for tools in per_resource:
                out += [t[1:] for t in tools if t[0] == tier and t not in primary]
    return out


SCOPES = ["", "admin_", "org_", "team_", "sandbox_", "staging_", "eu_", "us_"]


def generate(count: int, seed: str) -> list[dict[str, Any]]:
    """`count` tools with distinct names; past the catalog, scoped variants
    (admin_search_issues, ...) that take the scope's extra parameter."""
    base = catalog(seed)
    tools, seen = [], set()
    for round_index in range(10**6):
        prefix = SCOPES[round_index] if round_index < len(SCOPES) else f"region{round_index}_"
        for name, description, schema, annotations in base:
            if len(tools) == count:
                return tools
            full = prefix + name
            if full in seen:
                continue
            seen.add(full)
            if prefix:
                schema = json.loads(json.dumps(schema))
                schema["properties"]["workspace"] = {"type": "string", "description": "Workspace id."}
                description = f"{description} Needs {prefix[:-1]} rights."
            tools.append({"name": full, "description": description, "inputSchema": schema, "annotations": annotations})
    return tools


class TemplateTool(Tool):
    """A tool with a given schema whose calls answer with a short text."""

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return ToolResult(content=f"{self.name}: ok ({len(arguments)} arguments)")

    def to_mcp_tool(self, **overrides: Any):
        # Without fastmcp's own _meta ({"fastmcp": {"tags": []}}), as other servers send them.
        return super().to_mcp_tool(**overrides).model_copy(update={"meta": None})


def title_of(name: str) -> str:
    return name.replace("_", " ").capitalize()


def build(count: int, seed: str) -> FastMCP:
    mcp = FastMCP(f"many-tools-{seed}")
    for spec in generate(count, seed):
        mcp.add_tool(TemplateTool(name=spec["name"], title=title_of(spec["name"]), description=spec["description"],
                                  parameters=spec["inputSchema"], annotations=spec["annotations"]))
    return mcp


if __name__ == "__main__":
    count = int(os.environ.get("TOOL_COUNT", "52"))
    seed = os.environ.get("TOOL_SEED", "tracker")
    if sys.argv[1:] == ["--dump"]:
        json.dump([{"title": title_of(t["name"]), **t, "annotations": t["annotations"].model_dump(by_alias=True, exclude_none=True)}
                   for t in generate(count, seed)], sys.stdout)
    else:
        build(count, seed).run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), show_banner=False)
