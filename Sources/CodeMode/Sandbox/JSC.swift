import Foundation
import CJavaScriptCore

/// Small helpers over JavaScriptCore's C API. Every function here runs on
/// the sandbox thread that owns the context.
enum JSC {
    /// A JavaScript string made from a Swift one; the caller releases it.
    static func string(_ text: String) -> JSStringRef {
        text.withCString { JSStringCreateWithUTF8CString($0) }
    }

    static func swiftString(_ string: JSStringRef) -> String {
        let capacity = JSStringGetMaximumUTF8CStringSize(string)
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: capacity) { buffer in
            let written = JSStringGetUTF8CString(string, buffer.baseAddress, capacity)
            guard written > 0 else { return "" }
            let bytes = UnsafeRawBufferPointer(start: buffer.baseAddress, count: written - 1)
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    static func makeString(_ context: JSContextRef, _ text: String) -> JSValueRef {
        let string = string(text)
        defer { JSStringRelease(string) }
        return JSValueMakeString(context, string)
    }

    /// `String(value)`, or nil when converting throws.
    static func text(_ context: JSContextRef, _ value: JSValueRef?) -> String? {
        guard let value else { return nil }
        var exception: JSValueRef?
        guard let string = JSValueToStringCopy(context, value, &exception), exception == nil else { return nil }
        defer { JSStringRelease(string) }
        return swiftString(string)
    }

    /// `JSON.stringify(value)` by the engine itself (immune to a script
    /// replacing the global `JSON`). Nil for `undefined`; throws the
    /// engine's message for cycles, BigInts and throwing `toJSON`s.
    static func json(_ context: JSContextRef, _ value: JSValueRef) throws(JSCError) -> String? {
        var exception: JSValueRef?
        let string = JSValueCreateJSONString(context, value, 0, &exception)
        if let exception { throw JSCError(message: text(context, exception) ?? "not serializable") }
        guard let string else { return nil }
        defer { JSStringRelease(string) }
        return swiftString(string)
    }

    static func fromJSON(_ context: JSContextRef, _ text: String) -> JSValueRef? {
        let string = string(text)
        defer { JSStringRelease(string) }
        return JSValueMakeFromJSONString(context, string)
    }

    static func property(_ context: JSContextRef, _ object: JSValueRef?, _ name: String) -> JSValueRef? {
        guard let object, JSValueIsObject(context, object) else { return nil }
        let key = string(name)
        defer { JSStringRelease(key) }
        var exception: JSValueRef?
        let value = JSObjectGetProperty(context, JSValueToObject(context, object, nil), key, &exception)
        return exception == nil ? value : nil
    }

    static func number(_ context: JSContextRef, _ value: JSValueRef?) -> Double? {
        guard let value, JSValueIsNumber(context, value) else { return nil }
        return JSValueToNumber(context, value, nil)
    }

    static func makeError(_ context: JSContextRef, _ message: String, name: String? = nil) -> JSObjectRef? {
        let arguments: [JSValueRef?] = [makeString(context, message)]
        let error = arguments.withUnsafeBufferPointer { JSObjectMakeError(context, 1, $0.baseAddress, nil) }
        if let name, let error {
            let key = string("name")
            defer { JSStringRelease(key) }
            JSObjectSetProperty(context, error, key, makeString(context, name), JSPropertyAttributes(kJSPropertyAttributeDontEnum), nil)
        }
        return error
    }

    /// Evaluates `source` as a script; returns its value or throws the exception.
    static func evaluate(_ context: JSContextRef, _ source: String, url: String, line: Int32 = 1) throws(JSException) -> JSValueRef? {
        let script = string(source)
        let sourceURL = string(url)
        defer {
            JSStringRelease(script)
            JSStringRelease(sourceURL)
        }
        var exception: JSValueRef?
        let value = JSEvaluateScript(context, script, nil, sourceURL, line, &exception)
        if let exception { throw JSException(value: exception) }
        return value
    }

    /// The syntax error of `source`, nil when it parses.
    static func syntaxError(_ context: JSContextRef, _ source: String, url: String) -> JSValueRef? {
        let script = string(source)
        let sourceURL = string(url)
        defer {
            JSStringRelease(script)
            JSStringRelease(sourceURL)
        }
        var exception: JSValueRef?
        return JSCheckScriptSyntax(context, script, sourceURL, 1, &exception) ? nil : exception
    }

    static func call(_ context: JSContextRef, _ function: JSObjectRef, _ arguments: [JSValueRef?]) throws(JSException) -> JSValueRef? {
        var exception: JSValueRef?
        let value = arguments.withUnsafeBufferPointer { buffer in
            JSObjectCallAsFunction(context, function, nil, buffer.count, buffer.baseAddress, &exception)
        }
        if let exception { throw JSException(value: exception) }
        return value
    }
}

struct JSCError: Error {
    var message: String
}

/// A thrown JavaScript value.
struct JSException: Error {
    // Only touched on the owning sandbox thread.
    nonisolated(unsafe) var value: JSValueRef
}

/// A native function callable from JavaScript. Its Swift closure lives as
/// the function object's private data and is freed with it.
final class HostFunction {
    typealias Body = (JSContextRef, [JSValueRef?]) throws(JSException) -> JSValueRef?
    let body: Body

    init(_ body: @escaping Body) {
        self.body = body
    }

    nonisolated(unsafe) static let jsClass: JSClassRef = {
        var definition = kJSClassDefinitionEmpty
        definition.className = UnsafePointer(strdup("HostFunction"))
        definition.callAsFunction = { context, function, _, count, arguments, exception in
            guard let context, let function, let raw = JSObjectGetPrivate(function) else { return nil }
            let host = Unmanaged<HostFunction>.fromOpaque(raw).takeUnretainedValue()
            let values = (0..<count).map { arguments?[$0] }
            do throws(JSException) {
                return try host.body(context, values) ?? JSValueMakeUndefined(context)
            } catch {
                exception?.pointee = error.value
                return nil
            }
        }
        definition.finalize = { object in
            guard let raw = JSObjectGetPrivate(object) else { return }
            Unmanaged<HostFunction>.fromOpaque(raw).release()
        }
        return JSClassCreate(&definition)
    }()

    static func make(_ context: JSContextRef, _ body: @escaping Body) -> JSObjectRef {
        let host = HostFunction(body)
        return JSObjectMake(context, jsClass, Unmanaged.passRetained(host).toOpaque())
    }
}
