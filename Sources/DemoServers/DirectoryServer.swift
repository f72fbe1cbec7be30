import MCPWire

/// The built-in `directory` server: a people lookup over synthetic personal
/// data (names, emails, phones, national ids), all read-only. It is what DLP
/// rules are tried on.
public enum DirectoryServer {
    struct Person {
        var id: String, name: String, email: String, phone: String, department: String, title: String, ssn: String, manager: String?
        var json: JSON {
            var o: JSONObject = ["id": .string(id), "name": .string(name), "email": .string(email), "phone": .string(phone),
                                 "department": .string(department), "title": .string(title), "ssn": .string(ssn)]
            o["manager"] = manager.map(JSON.string) ?? .null
            return .object(o)
        }
    }

    // Synthetic people: the names, numbers and addresses are made up.
    static let people: [Person] = [
        Person(id: "u1001", name: "Ada Lindqvist", email: "ada.lindqvist@example.com", phone: "+1 415 555 0132", department: "Engineering", title: "Staff Engineer", ssn: "536-22-8147", manager: "u1004"),
        Person(id: "u1002", name: "Bruno Okafor", email: "bruno.okafor@example.com", phone: "+44 20 7946 0958", department: "Security", title: "Security Lead", ssn: "219-09-9999", manager: "u1004"),
        Person(id: "u1003", name: "Chen Wei", email: "chen.wei@example.com", phone: "+1 212 555 0199", department: "Finance", title: "Controller", ssn: "078-05-1120", manager: "u1004"),
        Person(id: "u1004", name: "Dana Moreau", email: "dana.moreau@example.com", phone: "+33 1 70 18 99 00", department: "Executive", title: "CTO", ssn: "457-55-5462", manager: nil),
        Person(id: "u1005", name: "Emeka Sato", email: "emeka.sato@example.com", phone: "+1 646 555 0143", department: "Engineering", title: "SRE", ssn: "323-45-6789", manager: "u1001"),
    ]

    public static func make() -> ToolServer {
        let tools: [ToolServer.Tool] = [
            .init(name: "find_people", description: "Find people by name, department or title.",
                  properties: ["query": ["type": "string"]], required: ["query"], readOnly: true) { args in
                let query = try args.string("query").lowercased()
                let found = people.filter { [$0.name, $0.department, $0.title].contains { $0.lowercased().contains(query) } }
                return ["people": .array(found.map(\.json))]
            },
            .init(name: "get_person", description: "Full directory record of one person by id.",
                  properties: ["id": ["type": "string"]], required: ["id"], readOnly: true) { args in
                let id = try args.string("id")
                guard let person = people.first(where: { $0.id == id }) else { throw ToolServer.ToolFailure("no person with id \(id)") }
                return person.json
            },
            .init(name: "list_departments", description: "Departments and their head counts.", properties: [:], readOnly: true) { _ in
                var counts: [String: Int] = [:]
                for person in people { counts[person.department, default: 0] += 1 }
                return ["departments": .array(counts.keys.sorted().map { ["name": .string($0), "people": .int(counts[$0]!)] })]
            },
        ]
        return ToolServer(name: "directory", instructions: "Company directory (synthetic data).", tools: tools)
    }
}
