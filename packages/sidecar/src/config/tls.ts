/**
 * The PEM files named by `tls` blocks. {@link parseConfig} reads them while it validates (so a
 * missing file is a config error with a line, and a reload reads them again); the proxy then uses
 * the bytes read then, looked up by the block object. A config built in code, not parsed, has its
 * files read when the {@link Sidecar} is built (relative paths from the working directory).
 * @module
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ListenerTlsConfig, UpstreamTlsConfig } from './schema.js';

/** The contents of a tls block's files. */
export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** sha256 of the settings and file contents: equal digests need no new pool or context. */
  digest: string;
}

/** A file that could not be read or used. */
export interface TlsFileProblem {
  /** The field naming the file (`ca_file`, ...), or undefined for a problem of the whole block. */
  field: 'ca_file' | 'cert_file' | 'key_file' | undefined;
  message: string;
}

type Block = UpstreamTlsConfig | ListenerTlsConfig;

const loaded = new WeakMap<Block, TlsMaterial>();
const FIELDS = ['ca_file', 'cert_file', 'key_file'] as const;

/**
 * Reads a block's files (relative to `baseDir`) and checks that node accepts them together
 * (PEM syntax, key matching the certificate). On success the material is remembered for
 * {@link tlsMaterial}.
 */
export function readTlsFiles(
  block: Block,
  baseDir: string,
): { material: TlsMaterial | undefined; problems: TlsFileProblem[] } {
  const problems: TlsFileProblem[] = [];
  const bytes: Partial<Record<(typeof FIELDS)[number], Buffer>> = {};
  for (const field of FIELDS) {
    const name = (block as Partial<Record<string, unknown>>)[field];
    if (typeof name !== 'string') continue;
    const path = resolve(baseDir, name);
    try {
      bytes[field] = readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({ field, message: `cannot read ${path}: ${code ?? String(err)}` });
    }
  }
  if (problems.length > 0) return { material: undefined, problems };
  const material: TlsMaterial = { digest: '' };
  if (bytes.ca_file) material.ca = bytes.ca_file;
  if (bytes.cert_file) material.cert = bytes.cert_file;
  if (bytes.key_file) material.key = bytes.key_file;
  try {
    createSecureContext({ ca: material.ca, cert: material.cert, key: material.key });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // Name the file when the message says which one node choked on.
    const field = /key/i.test(message) && !/certificate/i.test(message) ? 'key_file' : undefined;
    problems.push({ field, message: `unusable certificate or key: ${message}` });
    return { material: undefined, problems };
  }
  const h = createHash('sha256');
  h.update(JSON.stringify({ ...block, ca_file: 0, cert_file: 0, key_file: 0 }));
  for (const b of [material.ca, material.cert, material.key]) {
    h.update(String(b?.length ?? -1));
    if (b) h.update(b);
  }
  material.digest = h.digest('hex');
  loaded.set(block, material);
  return { material, problems };
}

/**
 * The material of a block: what {@link readTlsFiles} read when the config was parsed, else read now
 * (relative to the working directory). Throws an Error naming the field and file on failure.
 */
export function tlsMaterial(block: Block, where: string): TlsMaterial {
  const known = loaded.get(block);
  if (known) return known;
  const { material, problems } = readTlsFiles(block, process.cwd());
  if (material) return material;
  throw new Error(problems.map((p) => `${where}${p.field ? `/${p.field}` : ''}: ${p.message}`).join('; '));
}
