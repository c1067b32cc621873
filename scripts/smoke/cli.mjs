// Entry for Bun and Deno (and Node): runs the smoke suite against the server given as the first
// argument and prints the result as one JSON line. scripts/smoke/run.mjs judges it.
import { smoke } from './smoke.mjs';

const args = globalThis.Deno ? globalThis.Deno.args : globalThis.process.argv.slice(2);
const result = await smoke(args[0]);
console.log(JSON.stringify(result));
