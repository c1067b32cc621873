/**
 * The `tripswitch-tune` command's program: `synth SHAPE` writes a trace, `run --trace FILE` replays
 * traces under candidate settings and recommends one, `bench` measures the replay's speed. Exported
 * as `@tripswitch/tuner/cli` so the sidecar's `tripswitch tune` runs the same code.
 * @module
 */
import { Command } from 'commander';
import { run, runBench } from './run.js';
import { type SynthOptions, synthesize, traceShapes } from './synth.js';
import { traceChunks, writeTrace } from './trace.js';

function fail(err: unknown): never {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

const number = (flag: string) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) fail(`${flag}: expected a number, got "${v}"`);
  return n;
};

/**
 * Runs the command line `args` (without the node and script paths), as `tripswitch-tune` does.
 *
 * @example
 * ```ts
 * import { main } from '@tripswitch/tuner/cli';
 * await main(['run', '--trace', 'outage.ndjson', '--config', 'candidates.yaml'], 'tripswitch tune');
 * ```
 */
export async function main(args: readonly string[], name = 'tripswitch-tune'): Promise<void> {
  const program = new Command();
  program
    .name(name)
    .description('choose circuit-breaker settings by replaying traffic through real breakers');

  program
    .command('synth')
    .argument('<shape>', traceShapes.join(' | '))
    .description('write a synthesized trace (NDJSON, first line: its incidents)')
    .option('--seed <n>', 'PRNG seed', number('--seed'), 1)
    .option('--rate <n>', 'calls per second', number('--rate'))
    .option('--duration <ms>', 'trace length in ms', number('--duration'))
    .option('--name <name>', 'breaker name on each call')
    .option(
      '--set <key=value...>',
      'any other SynthOptions field, e.g. --set incidentMs=60000 peakLatencyMs=3000',
    )
    .option('-o, --out <file>', 'write here instead of stdout')
    .action(
      (
        shape: string,
        o: { seed: number; rate?: number; duration?: number; name?: string; set?: string[]; out?: string },
      ) => {
        try {
          const opts: Record<string, unknown> = { shape, seed: o.seed };
          if (o.rate !== undefined) opts.rate = o.rate;
          if (o.duration !== undefined) opts.durationMs = o.duration;
          if (o.name !== undefined) opts.name = o.name;
          for (const kv of o.set ?? []) {
            const eq = kv.indexOf('=');
            if (eq <= 0) fail(`--set: expected key=value, got "${kv}"`);
            const v = Number(kv.slice(eq + 1));
            if (!Number.isFinite(v)) fail(`--set ${kv.slice(0, eq)}: expected a number`);
            opts[kv.slice(0, eq)] = v;
          }
          const trace = synthesize(opts as unknown as SynthOptions);
          if (o.out) writeTrace(o.out, trace);
          else for (const chunk of traceChunks(trace)) process.stdout.write(chunk);
        } catch (err) {
          fail(err);
        }
      },
    );

  program
    .command('run')
    .description(
      'replay traces under each candidate; print the table, the Pareto front and the chosen settings',
    )
    .requiredOption('-t, --trace <files...>', 'NDJSON traces (recorded or synthesized)')
    .option('-c, --config <file>', 'candidates YAML (candidates: and/or grid:); default: the built-in grid')
    .option('--name <name>', 'breaker name to replay (default: the busiest in each trace)')
    .option('--html <file>', 'write the chart here (self-contained HTML)')
    .option('--yaml <file>', 'write the chosen settings as a sidecar config here')
    .option('--cluster <name>', 'cluster name in the sidecar YAML (default: the breaker name)')
    .option('--weight <objective=w...>', 'weights when choosing from the front, e.g. falseOpens=3')
    .action(
      async (o: {
        trace: string[];
        config?: string;
        name?: string;
        html?: string;
        yaml?: string;
        cluster?: string;
        weight?: string[];
      }) => {
        try {
          await run({ ...o, traces: o.trace, out: process.stdout });
        } catch (err) {
          fail(err);
        }
      },
    );

  program
    .command('bench')
    .description('measure replay speed: a synthesized hard outage of N calls through a few candidates')
    .option('--calls <n>', 'calls in the trace', number('--calls'), 1_000_000)
    .action(async (o: { calls: number }) => {
      try {
        await runBench(o.calls, process.stdout);
      } catch (err) {
        fail(err);
      }
    });

  await program.parseAsync([...args], { from: 'user' });
}
