// Cargo test runner for wasm32-wasip1: runs a test binary under Node's WASI (preview1).
//
// Used as CARGO_TARGET_WASM32_WASIP1_RUNNER by `make test-wasm32`, so the core's unit tests run
// with a 32-bit usize exactly as inside Envoy. Imports outside WASI (the proxy-wasm host ABI the
// shell links against) are stubbed so that instantiation succeeds; a unit test that actually
// calls one fails loudly instead of passing against a fake host.
//
// Node 20 can crash with SIGSEGV while tearing itself down after a large wasm module has run
// (seen with the 14 MB debug test binary: every test passed, the result line was printed, exit
// handlers ran, then the process died). So the module runs in a child Node process that reports
// the module's own exit status on fd 3 as soon as `wasi.start` returns; the parent exits with
// that status. A child that dies before reporting is a failure, as it should be.
import { readFile } from "node:fs/promises";
import { writeSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { WASI } from "node:wasi";
import process from "node:process";

const CHILD_FLAG = "--tokenmeter-wasi-child";
const isChild = process.argv[2] === CHILD_FLAG;
const [wasmPath, ...args] = process.argv.slice(isChild ? 3 : 2);
if (!wasmPath) {
  console.error("usage: node wasm32-runner.mjs <test.wasm> [args...]");
  process.exit(2);
}

if (!isChild) {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), CHILD_FLAG, wasmPath, ...args],
    { stdio: ["inherit", "inherit", "inherit", "pipe"] },
  );
  const reported = child.output?.[3]?.toString().trim();
  if (reported && /^\d+$/.test(reported)) {
    process.exit(Number(reported));
  }
  console.error(`wasm32-runner: the module did not finish (status ${child.status}, signal ${child.signal})`);
  process.exit(child.status || 1);
}

const wasi = new WASI({
  version: "preview1",
  args: [wasmPath, ...args],
  env: { RUST_BACKTRACE: process.env.RUST_BACKTRACE ?? "0", ...filteredEnv() },
  preopens: { ".": process.cwd(), "/": "/" },
  returnOnExit: true,
});

function filteredEnv() {
  // Pass through the variables the Rust test harness reads; not the whole host environment.
  const keep = ["RUST_TEST_THREADS", "RUST_TEST_NOCAPTURE", "PROPTEST_CASES", "RUST_MIN_STACK"];
  return Object.fromEntries(keep.filter((k) => k in process.env).map((k) => [k, process.env[k]]));
}

const module = await WebAssembly.compile(await readFile(wasmPath));
const imports = { wasi_snapshot_preview1: wasi.wasiImport };
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "wasi_snapshot_preview1") continue;
  imports[imp.module] ??= {};
  if (imp.kind === "function") {
    imports[imp.module][imp.name] = () => {
      throw new Error(`unit test called host function ${imp.module}.${imp.name}`);
    };
  } else if (imp.kind === "memory") {
    imports[imp.module][imp.name] = new WebAssembly.Memory({ initial: 17 });
  } else if (imp.kind === "table") {
    imports[imp.module][imp.name] = new WebAssembly.Table({ initial: 0, element: "anyfunc" });
  } else if (imp.kind === "global") {
    imports[imp.module][imp.name] = new WebAssembly.Global({ value: "i32", mutable: true }, 0);
  }
}

const instance = await WebAssembly.instantiate(module, imports);
// WASI refuses a command module that also exports a reactor entry point; hide it.
const { _initialize, ...exports } = instance.exports;
const code = wasi.start({ exports }) ?? 0;
writeSync(3, `${code}\n`);
process.exit(code);
