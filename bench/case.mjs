#!/usr/bin/env node
// Runs ONE benchmark case in this process and prints one result line (`@@result <json>`).
// Usage: node --expose-gc bench/case.mjs <library> <scenario> [--cpu-ms N] [--warm-ms N] [--reps N]
// run.mjs starts one of these per case, so no case shares a V8 instance (JIT state, inline caches,
// heap) with another.
import { parseArgs } from 'node:util';
import { heapPerObject, timeAsync, timeFailureAfter, timeSync } from './lib/measure.mjs';
import { calls } from './cases/workload.mjs';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    'cpu-ms': { type: 'string', default: '400' },
    'warm-ms': { type: 'string', default: '150' },
    reps: { type: 'string', default: '7' },
    batch: { type: 'string', default: '1024' },
  },
});
const [library, scenarioName] = positionals;
const opts = {
  cpuMs: Number(values['cpu-ms']),
  warmMs: Number(values['warm-ms']),
  reps: Number(values.reps),
  batch: Number(values.batch),
};

const emit = (result) => {
  process.stdout.write(`@@result ${JSON.stringify({ library, scenario: scenarioName, ...result })}\n`);
};

const problems = [];
const verify = (cond, message) => {
  if (!cond) problems.push(message);
};

try {
  const mod = await import(`./cases/${library}.mjs`);
  const reason =
    mod.unavailable?.(scenarioName) ?? (mod.scenarios[scenarioName] ? undefined : 'no such scenario');
  if (reason) {
    emit({ skipped: reason });
  } else {
    const scenario = await mod.scenarios[scenarioName]();
    const kind = scenarioName.split('.')[0];
    let result;
    if (kind === 'heap') {
      result = heapPerObject(scenario, { count: 10_000 });
    } else if (kind === 'single') {
      result = await timeFailureAfter(scenario, { successes: 100_000, reps: opts.reps });
    } else if (kind === 'permit') {
      result = await timeSync(scenario.call, opts);
    } else {
      const before = calls();
      result = await timeAsync(scenario.call, opts);
      const ran = calls() - before;
      if (kind === 'open' && library !== 'baseline') {
        // A rejection while open must never run the protected function.
        verify(ran === 0, `the protected function ran ${ran} times while the breaker was open`);
        verify(result.resolved === 0, `${result.resolved} calls resolved while open`);
      } else if (kind !== 'open') {
        verify(result.rejected === 0, `${result.rejected} calls rejected`);
        verify(
          ran >= result.calls,
          `the protected function ran ${ran} times for ${result.calls} timed calls`,
        );
      }
      result.fnCalls = ran;
    }
    const problem = scenario.check?.();
    if (problem) problems.push(problem);
    scenario.dispose?.();
    emit({ ...result, problems });
  }
} catch (error) {
  emit({ error: String(error?.stack ?? error).slice(0, 2000) });
}
// opossum keeps unref'd intervals; nothing else should keep the process alive, but do not wait for it.
process.exitCode = 0;
