/**
 * Test support: the ACL lines docs/redis.md documents, read from the doc so the tests run with
 * exactly what users are told to configure. Not published, not run as a test.
 * @module
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const docPath = fileURLToPath(new URL('../../../docs/redis.md', import.meta.url));

/** The `ACL SETUSER` line docs/redis.md gives for `deployment` (standalone / cluster). */
export function documentedAcl(deployment: 'standalone' | 'cluster'): string[] {
  const doc = readFileSync(docPath, 'utf8');
  const m = doc.match(new RegExp(`<!-- acl:${deployment} -->\\s*\`\`\`\\w*\\n(ACL SETUSER [^\\n]+)\\n`));
  assert.ok(m, `docs/redis.md has an ACL SETUSER line marked <!-- acl:${deployment} -->`);
  return m[1]!.split(/\s+/).slice(3); // after "ACL SETUSER <user>"
}
