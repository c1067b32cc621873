#!/usr/bin/env node
// Every export a package publishes (its `exports` map entry points, followed through re-exports)
// must carry TSDoc with an @example: the style the project promises its users. Part of `npm run lint`.
import { readFileSync } from 'node:fs';
import ts from 'typescript';

const entries = [];
for (const pkg of ['core', 'otel', 'prometheus', 'redis', 'sidecar', 'tuner']) {
  const manifest = JSON.parse(readFileSync(`packages/${pkg}/package.json`, 'utf8'));
  for (const target of Object.values(manifest.exports)) {
    const file = typeof target === 'string' ? target : target.default;
    if (file.endsWith('.js'))
      entries.push(`packages/${pkg}/src/${file.replace('./dist/', '').replace(/\.js$/, '.ts')}`);
  }
}
const program = ts.createProgram(entries, {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  strict: true,
  noEmit: true,
});
const checker = program.getTypeChecker();
const problems = [];
let total = 0;
for (const entry of entries) {
  const sf = program.getSourceFile(entry);
  if (!sf) throw new Error(`check-docs: ${entry} not found (an exports entry without its source?)`);
  for (let sym of checker.getExportsOfModule(checker.getSymbolAtLocation(sf))) {
    const name = sym.name;
    if (sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
    const decl = sym.declarations?.[0];
    if (!decl) continue;
    total++;
    const node = ts.isVariableDeclaration(decl) ? decl.parent.parent : decl;
    const docs = ts
      .getJSDocCommentsAndTags(node)
      .map((d) => d.getText())
      .join('\n');
    const where = `${decl.getSourceFile().fileName.replace(`${process.cwd()}/`, '')} (${name}, exported by ${entry})`;
    if (!docs) problems.push(`${where}: no TSDoc`);
    else if (!docs.includes('@example')) problems.push(`${where}: TSDoc without @example`);
  }
}
for (const p of problems) console.error(p);
console.log(`check-docs: ${total - problems.length} of ${total} public exports documented with an example`);
process.exit(problems.length ? 1 : 0);
