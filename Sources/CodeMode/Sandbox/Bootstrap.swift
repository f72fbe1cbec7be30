/// The JavaScript that sets up each execution's context before the model's
/// code runs. The host functions reach it as arguments and stay in its
/// closure: the code sees only `codemode` and `console`, both fixed to the
/// global object, and cannot reach the host functions or replace them.
enum Bootstrap {
    static let source = #"""
    (function (hostCall, hostTools, hostDescribe, hostLog, hostDone, hostFail) {
      "use strict";
      const api = Object.create(null);
      api.tools = async function tools() { return hostTools(); };
      api.describe = async function describe(name) { return hostDescribe(String(name)); };
      api.call = function call(name, args) { return hostCall(String(name), args, false); };
      Object.freeze(api);
      const handler = Object.freeze({
        get(target, key) {
          if (typeof key !== "string") return undefined;
          if (key in target) return target[key];
          if (key === "then" || key === "toJSON") return undefined;
          return function (args) { return hostCall(key, args, true); };
        },
        has(target, key) { return typeof key === "string" && key in target; },
        set() { return false; },
        defineProperty() { return false; },
        deleteProperty() { return false; },
        setPrototypeOf() { return false; },
      });
      const codemode = new Proxy(api, handler);
      const logger = (level) => function (...items) { hostLog(level, items); };
      const console = Object.freeze({
        log: logger("log"), info: logger("info"), debug: logger("debug"), warn: logger("warn"), error: logger("error"),
      });
      Object.defineProperty(globalThis, "codemode", { value: codemode, writable: false, enumerable: true, configurable: false });
      Object.defineProperty(globalThis, "console", { value: console, writable: false, enumerable: true, configurable: false });
      // No shared memory, no second engine: nothing here the sandbox needs.
      for (const name of ["WebAssembly", "SharedArrayBuffer", "Atomics"]) delete globalThis[name];
      return async function run(main) {
        try {
          hostDone(await (typeof main === "function" ? main() : main));
        } catch (error) {
          hostFail(error);
        }
      };
    })
    """#
}
