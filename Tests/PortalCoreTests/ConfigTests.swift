import Testing
@testable import PortalCore

@Suite("Configuration")
struct ConfigTests {
    let loader = ConfigLoader(environment: ["TOKEN": "s3cret"])

    @Test func readsAFullFile() throws {
        let yaml = """
        listen: {host: 0.0.0.0, port: 9000}
        limits:
          call_timeout_seconds: 2.5
          max_body_bytes: 65536
        pinning: {new_tools: hold}
        servers:
          - id: time
            command: python3
            args: [-m, mcp_server_time]
            env: {TZ: UTC}
          - id: wiki
            url: https://wiki.example.com/mcp
            headers: {Authorization: "Bearer ${env:TOKEN}"}
          - id: notes
            builtin: notes
        portals:
          - id: eng
            servers: [time, wiki, notes]
            allow_writes: false
            tools:
              wiki_search: {alias: search}
              time_convert_time: {enabled: false}
        """
        let config = try loader.parse(yaml, file: "portal.yaml")
        #expect(config.listen.port == 9000)
        #expect(config.limits.callTimeoutSeconds == 2.5)
        #expect(config.pinning.newTools == .hold)
        #expect(config.servers.map(\.id) == ["time", "wiki", "notes"])
        #expect(config.servers[1].transport == .http(url: "https://wiki.example.com/mcp", mode: .auto, headers: ["Authorization": "Bearer s3cret"]))
        #expect(config.portals[0].tools["wiki_search"]?.alias == "search")
        #expect(config.portals[0].tools["time_convert_time"]?.enabled == false)
    }

    func configError(_ yaml: String) -> ConfigError? {
        do {
            _ = try loader.parse(yaml, file: "p.yaml")
            return nil
        } catch {
            return error
        }
    }

    @Test func unknownKeyNamesLineAndKey() throws {
        let error = try #require(configError("servers:\n  - id: a\n    command: x\n    timout_seconds: 3\n"))
        #expect(error.line == 4)
        #expect(error.key == "servers[0].timout_seconds")
        #expect(error.description.hasPrefix("p.yaml:4:5: servers[0].timout_seconds: unknown key"))
    }

    @Test func badValues() throws {
        #expect(configError("listen: {port: 70000}")?.key == "listen.port")
        #expect(configError("servers:\n  - id: Bad_Id\n    command: x\n")?.message.contains("not a valid server id") == true)
        #expect(configError("servers:\n  - id: a\n    url: ftp://x\n")?.key == "servers[0].url")
        #expect(configError("servers:\n  - id: a\n    url: http://x\n    command: y\n")?.message.contains("exactly one") == true)
        #expect(configError("servers:\n  - id: a\n    url: http://x/${env:MISSING}\n")?.message == "environment variable MISSING is not set")
        #expect(configError("portals:\n  - id: p\n    servers: [ghost]\n")?.key == "portals[0].servers[0]")
        #expect(configError("servers:\n  - id: a\n    builtin: x\n  - id: a\n    builtin: notes\n") != nil)
        #expect(configError("limits: {call_timeout_seconds: -1}")?.key == "limits.call_timeout_seconds")
        #expect(configError("key: [unclosed")?.line != nil)
    }

    @Test func embeddedDefaultsAreValid() {
        let config = PortalConfig.embeddedDefaults
        #expect(config.portals.first?.id == "default")
        #expect(config.servers.map(\.id) == ["notes", "directory"])
    }
}

@Suite("Tool naming")
struct ToolNamingTests {
    @Test func prefixesServer() {
        #expect(ToolNaming.exposedName(server: "time", tool: "get_current_time") == "time_get_current_time")
    }

    @Test func longAndOddNamesStayValidAndStable() {
        let long = String(repeating: "x", count: 80)
        let a = ToolNaming.exposedName(server: "srv", tool: long)
        #expect(a.count == 64)
        #expect(ToolNaming.isValidName(a))
        #expect(a == ToolNaming.exposedName(server: "srv", tool: long))
        #expect(a != ToolNaming.exposedName(server: "srv", tool: long + "y"))
        let odd = ToolNaming.exposedName(server: "srv", tool: "do.thing now")
        #expect(ToolNaming.isValidName(odd))
        #expect(odd != ToolNaming.exposedName(server: "srv", tool: "do_thing_now"))
    }

    @Test func serverIDs() {
        #expect(ServerConfig.isValidID("a-1"))
        #expect(!ServerConfig.isValidID("-a"))
        #expect(!ServerConfig.isValidID("a_b"))
        #expect(!ServerConfig.isValidID(String(repeating: "a", count: 33)))
    }
}
