import Foundation
import GRDB
import MCPWire

/// The built-in `notes` server: team notes in SQLite, with read tools marked
/// `readOnlyHint: true` and write tools that are not.
public enum NotesServer {
    public static func make(folder: String) throws -> ToolServer {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: (folder as NSString).appendingPathComponent("notes.sqlite"))
        try queue.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS note (
                  id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, body TEXT NOT NULL,
                  tags TEXT NOT NULL DEFAULT '', updated REAL NOT NULL)
                """)
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM note") == 0 {
                let seed = [
                    ("On-call handbook", "Page the primary first. Escalate after 15 minutes to the secondary.", "ops"),
                    ("Release checklist", "Tag, build, sign, publish, announce in #releases.", "eng"),
                    ("Q3 planning", "Themes: portal GA, DLP profiles, audit export.", "planning"),
                ]
                for (title, body, tags) in seed {
                    try db.execute(sql: "INSERT INTO note (title, body, tags, updated) VALUES (?, ?, ?, ?)",
                                   arguments: [title, body, tags, Date().timeIntervalSince1970])
                }
            }
        }
        @Sendable func note(_ row: Row) -> JSON {
            ["id": .int(row["id"]), "title": .string(row["title"]), "body": .string(row["body"]), "tags": .string(row["tags"])]
        }
        let tools: [ToolServer.Tool] = [
            .init(name: "search_notes", description: "Search notes by words in the title, body or tags.",
                  properties: ["query": ["type": "string", "description": "Words to look for"]], required: ["query"], readOnly: true) { args in
                let query = try args.string("query")
                let notes = try await queue.read { db in
                    try Row.fetchAll(db, sql: "SELECT * FROM note WHERE title LIKE ?1 OR body LIKE ?1 OR tags LIKE ?1 ORDER BY id",
                                     arguments: ["%\(query)%"]).map(note)
                }
                return ["notes": .array(notes)]
            },
            .init(name: "get_note", description: "Read one note by id.",
                  properties: ["id": ["type": "integer"]], required: ["id"], readOnly: true) { args in
                guard let id = args["id"]?.intValue else { throw JSONRPCError.invalidParams("\"id\" must be an integer") }
                guard let found = try await queue.read({ db in try Row.fetchOne(db, sql: "SELECT * FROM note WHERE id = ?", arguments: [id]).map(note) }) else {
                    throw ToolServer.ToolFailure("no note with id \(id)")
                }
                return found
            },
            .init(name: "create_note", description: "Create a note.",
                  properties: ["title": ["type": "string"], "body": ["type": "string"], "tags": ["type": "string"]],
                  required: ["title", "body"], readOnly: false) { args in
                let title = try args.string("title"), body = try args.string("body")
                let tags = args["tags"]?.stringValue ?? ""
                let id = try await queue.write { db in
                    try db.execute(sql: "INSERT INTO note (title, body, tags, updated) VALUES (?, ?, ?, ?)",
                                   arguments: [title, body, tags, Date().timeIntervalSince1970])
                    return db.lastInsertedRowID
                }
                return ["id": .int(Int(id)), "title": .string(title)]
            },
            .init(name: "delete_note", description: "Delete a note by id.",
                  properties: ["id": ["type": "integer"]], required: ["id"], readOnly: false, destructive: true) { args in
                guard let id = args["id"]?.intValue else { throw JSONRPCError.invalidParams("\"id\" must be an integer") }
                let deleted = try await queue.write { db in
                    try db.execute(sql: "DELETE FROM note WHERE id = ?", arguments: [id])
                    return db.changesCount
                }
                return ["deleted": .bool(deleted > 0)]
            },
        ]
        let resources: [ToolServer.Resource] = [
            .init(uri: "notes://index", name: "index", description: "Titles of all notes") {
                let titles = try await queue.read { db in
                    try Row.fetchAll(db, sql: "SELECT id, title FROM note ORDER BY id").map { row -> JSON in ["id": .int(row["id"]), "title": .string(row["title"])] }
                }
                return JSON.array(titles).text
            },
        ]
        let prompts: [ToolServer.Prompt] = [
            .init(name: "summarize_note", description: "Ask for a summary of one note.", arguments: [("id", "The note's id")]) { args in
                "Summarize note \(args["id"]?.stringValue ?? args["id"]?.text ?? "?") in three bullet points."
            },
        ]
        return ToolServer(name: "notes", instructions: "Team notes: search, read and write.", tools: tools, resources: resources, prompts: prompts)
    }
}
