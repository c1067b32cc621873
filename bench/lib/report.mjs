// Aggregation across rounds and the Markdown / JSON report.
import { comparisons, sections } from '../cases/index.mjs';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * One case's rounds -> { status, value, mean, spread, problems, ... }. `stat` picks the value over
 * rounds: 'median' (default), or 'min' for a machine under load (interference only adds time).
 */
export function aggregate(id, rounds, stat = 'median') {
  const kind = id.split(':')[1].split('.')[0];
  const field = kind === 'heap' ? 'bytes' : 'ns';
  const errors = rounds.filter((r) => r.error);
  const skipped = rounds.filter((r) => r.skipped);
  const ok = rounds.filter((r) => !r.error && !r.skipped && typeof r[field] === 'number');
  const problems = [...new Set(rounds.flatMap((r) => r.problems ?? []))];
  if (ok.length === 0) {
    if (errors.length) return { status: 'error', reason: errors[0].error.split('\n')[0], problems };
    if (skipped.length) return { status: 'skipped', reason: skipped[0].skipped, problems };
    return { status: 'error', reason: 'no result', problems };
  }
  const values = ok.map((r) => r[field]);
  const out = {
    status: problems.length ? 'invalid' : 'ok',
    value: stat === 'min' ? Math.min(...values) : median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    rounds: values.length,
    problems,
    sample: ok[0].sample,
  };
  if (kind !== 'heap' && kind !== 'single') out.mean = median(ok.map((r) => r.avg));
  if (kind === 'single') {
    out.firstNs = median(ok.map((r) => r.firstNs));
    out.successNs = median(ok.map((r) => r.successNs));
  }
  if (errors.length) out.problems.push(`${errors.length} round(s) failed: ${errors[0].error.split('\n')[0]}`);
  return out;
}

export function fmtNs(x) {
  if (x === undefined || Number.isNaN(x)) return 'n/a';
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)} ms`;
  if (a >= 1e4) return `${(x / 1e3).toFixed(1)} us`;
  if (a >= 100) return `${Math.round(x).toLocaleString('en-US')} ns`;
  return `${x.toFixed(1)} ns`;
}

export function fmtBytes(x) {
  if (x === undefined || Number.isNaN(x)) return 'n/a';
  return x >= 1024 ? `${(x / 1024).toFixed(2)} KB` : `${Math.round(x)} B`;
}

const fmtRatio = (r) => (r === undefined || !Number.isFinite(r) ? 'n/a' : `${r.toFixed(r < 0.1 ? 3 : 2)}x`);

/** The number a comparison uses for one case, or undefined when it was not measured. */
function measured(results, id, measure) {
  const r = results[id];
  if (!r || (r.status !== 'ok' && r.status !== 'invalid')) return undefined;
  if (measure !== 'added') return r.value;
  const section = sections.find((s) => s.cases.some(([cid]) => cid === id));
  const base = results[section?.baseline];
  if (!base || base.value === undefined) return undefined;
  return r.value - base.value;
}

export function compare(results) {
  return comparisons.map((c) => {
    const v = (lib) => (c[lib] ? measured(results, c[lib], c.measure) : undefined);
    const row = {
      label: c.label,
      measure: c.measure,
      tripswitch: v('tripswitch'),
      cockatiel: v('cockatiel'),
    };
    row.opossum = v('opossum');
    row.vsCockatiel =
      row.tripswitch !== undefined && row.cockatiel > 0 ? row.tripswitch / row.cockatiel : undefined;
    row.vsOpossum =
      row.tripswitch !== undefined && row.opossum > 0 ? row.tripswitch / row.opossum : undefined;
    row.target = c.target?.text ?? '';
    row.note = c.note;
    if (c.target && row.tripswitch !== undefined) {
      let met = true;
      for (const [peer, max] of Object.entries(c.target.maxRatio ?? {})) {
        const ratio = peer === 'cockatiel' ? row.vsCockatiel : row.vsOpossum;
        if (ratio === undefined || ratio > max) met = false;
      }
      if (c.target.maxValue !== undefined && row.tripswitch > c.target.maxValue) met = false;
      row.met = met;
    }
    return row;
  });
}

export function markdown({ env, results, comparison, redis, overload, options, elapsedMs }) {
  const out = [];
  const line = (s = '') => out.push(s);
  line('# tripswitch benchmark results');
  line();
  line(`Command: \`npm run bench${options.args.length ? ` -- ${options.args.join(' ')}` : ''}\``);
  line();
  line(
    `Node ${env.node} (V8 ${env.v8}), ${env.cpu}, ${env.platform}, ${env.memoryGB} GB. ` +
      `tripswitch ${env.versions.tripswitch}, cockatiel ${env.versions.cockatiel}, opossum ${env.versions.opossum}, ` +
      `mitata ${env.versions.mitata}. ${env.date}.`,
  );
  line();
  line(
    `Method: one process per case per round (${options.rounds} rounds, interleaved); mitata batches of ` +
      `${options.batch} calls, ${options.cpuMs} ms of samples after a ${options.warmMs} ms warm-up; the value is ` +
      `the ${options.stat === 'min' ? 'lowest' : 'median'} over rounds of each process\u2019s median batch ` +
      '(baselines run twice per round). "added" = value minus the section baseline (same wrapper, ' +
      'no library). Ratios are tripswitch / peer on the added cost. See bench/README.md.',
  );
  line();
  line(
    `Load average at start ${env.loadavgStart.join(' / ')}, at end ${env.loadavgEnd.join(' / ')}` +
      ` (1/5/15 min, ${env.cpu.match(/\((\d+)/)?.[1] ?? '?'} cores). Total time ${(elapsedMs / 1000).toFixed(0)} s.` +
      (Math.max(...env.loadavgStart, ...env.loadavgEnd) > 0.5
        ? ' Other processes were using the CPU during this run: expect noise of tens of percent.'
        : ''),
  );
  line();
  line('## Summary against the targets');
  line();
  line(
    '| scenario | tripswitch | cockatiel | opossum | tripswitch / cockatiel | tripswitch / opossum | target | met |',
  );
  line('|---|--:|--:|--:|--:|--:|---|---|');
  for (const r of comparison) {
    const f = r.measure === 'bytes' ? fmtBytes : fmtNs;
    const met = r.target ? (r.met === undefined ? 'not measured' : r.met ? 'yes' : '**no**') : '';
    const suffix = r.measure === 'added' ? ' (added)' : '';
    line(
      `| ${r.label}${suffix} | ${f(r.tripswitch)} | ${f(r.cockatiel)} | ${f(r.opossum)} | ` +
        `${fmtRatio(r.vsCockatiel)} | ${fmtRatio(r.vsOpossum)} | ${r.target} | ${met} |`,
    );
  }
  const notes = comparison.filter((r) => r.note);
  if (notes.length) {
    line();
    for (const r of notes) line(`- ${r.label}: ${r.note}.`);
  }
  for (const s of sections) {
    line();
    line(`## ${s.title}`);
    line();
    const heap = s.id === 'heap';
    const single = s.id === 'single';
    if (heap) {
      line('| case | bytes / breaker | spread over rounds |');
      line('|---|--:|--:|');
    } else if (single) {
      line(
        '| case | ns per failing call (median of the 2nd..21st) | first failing call | one success at that point | spread over rounds | added |',
      );
      line('|---|--:|--:|--:|--:|--:|');
    } else {
      line(
        `| case | ${s.unit} (median) | ${single ? 'one success at the same point' : 'mean'} | spread over rounds | added |`,
      );
      line('|---|--:|--:|--:|--:|');
    }
    const base = results[s.baseline];
    for (const [id, label] of s.cases) {
      const r = results[id];
      if (!r || r.status === 'skipped' || r.status === 'error') {
        const why = r ? `${r.status}: ${r.reason}` : 'not run (filtered out)';
        line(`| ${label} | ${why} |${' |'.repeat(heap ? 1 : single ? 4 : 3)}`);
        continue;
      }
      const flag = r.status === 'invalid' ? ` (INVALID: ${r.problems.join('; ')})` : '';
      if (heap) {
        line(`| ${label}${flag} | ${fmtBytes(r.value)} | ${fmtBytes(r.min)} .. ${fmtBytes(r.max)} |`);
      } else {
        const added = id === s.baseline || !base?.value ? '' : fmtNs(r.value - base.value);
        const extra = single ? `${fmtNs(r.firstNs)} | ${fmtNs(r.successNs)}` : fmtNs(r.mean);
        // Rounds that differ by more than 30% mean the machine was busy during some of them.
        const noisy = r.rounds > 1 && r.max > 1.3 * r.min ? ' (noisy)' : '';
        line(
          `| ${label}${flag} | ${fmtNs(r.value)} | ${extra} | ${fmtNs(r.min)} .. ${fmtNs(r.max)}${noisy} | ${added} |`,
        );
      }
    }
  }
  line();
  line('## Redis-backed breaker (optional)');
  line();
  line(redis.markdown ?? `Skipped: ${redis.skipped}`);
  line();
  if (overload !== undefined) {
    line('## Adaptive limiter under overload (simulated, bench/overload.mjs)');
    line();
    line(overload.markdown ?? `Skipped: ${overload.skipped}`);
    line();
  }
  return out.join('\n');
}
