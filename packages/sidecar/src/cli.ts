#!/usr/bin/env node
/**
 * The `tripswitch` command: `proxy --config FILE`, `validate FILE`, `export envoy|istio --config FILE`,
 * `tune --trace FILE` (with @tripswitch/tuner installed).
 * @module
 */
import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Command } from 'commander';
import type { TimerHandle } from 'tripswitch';
import { type AdminServer, startAdmin } from './admin/admin.js';
import { isConfigError, loadConfig } from './config/load.js';
import { toEnvoy, toIstio } from './export/export.js';
import type { SidecarConfig } from './config/schema.js';
import { Sidecar, stderrLogger } from './proxy/server.js';
import { startWorkers, type WorkerPool } from './proxy/workers.js';
import { loadTraceRecorder } from './record-trace.js';
import { loadSharedState } from './shared-state.js';

const program = new Command();

const needsSharedState = (c: SidecarConfig): boolean =>
  c.clusters.some((x) => x.shared_state !== undefined && x.breaker?.enabled !== false);
const needsRecorder = (c: SidecarConfig): boolean =>
  c.clusters.some((x) => x.record_trace !== undefined && x.breaker?.enabled !== false);
/** The optional packages a config needs, loaded only then (@tripswitch/redis, @tripswitch/tuner). */
async function optionalPackages(c: SidecarConfig) {
  return {
    ...(needsSharedState(c) ? { sharedState: await loadSharedState() } : {}),
    ...(needsRecorder(c) ? { recordTrace: await loadTraceRecorder() } : {}),
  };
}
program.name('tripswitch').description('Envoy-style circuit-breaking sidecar proxy');

function fail(err: unknown): never {
  process.stderr.write(
    `${isConfigError(err) ? err.message : err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
}

program
  .command('validate')
  .argument('<file>', 'YAML config')
  .description('validate a config file; errors name the path and line:column')
  .action((file: string) => {
    try {
      loadConfig(file);
      process.stdout.write(`${file}: ok\n`);
    } catch (err) {
      fail(err);
    }
  });

program
  .command('export')
  .argument('<target>', 'envoy or istio')
  .requiredOption('-c, --config <file>', 'YAML config')
  .description('print the equivalent Envoy clusters or Istio DestinationRules')
  .action((target: string, opts: { config: string }) => {
    if (target !== 'envoy' && target !== 'istio') fail(`unknown export target "${target}" (envoy or istio)`);
    let cfg: ReturnType<typeof loadConfig>;
    try {
      cfg = loadConfig(opts.config);
    } catch (err) {
      fail(err);
    }
    process.stdout.write(target === 'envoy' ? toEnvoy(cfg) : toIstio(cfg));
  });

// `tripswitch tune ...` is `tripswitch-tune run ...` from @tripswitch/tuner, an optional package:
// imported by name at run time so the sidecar neither depends on it nor builds against it.
const TUNER_CLI = '@tripswitch/tuner/cli';
program
  .command('tune')
  .description('choose breaker settings by replaying traces: `tripswitch-tune run` (needs @tripswitch/tuner)')
  .allowUnknownOption()
  .allowExcessArguments()
  .helpOption(false)
  .argument('[args...]', 'options of `tripswitch-tune run`, e.g. --trace FILE --config candidates.yaml')
  .action(async (args: string[]) => {
    let tuner: { main(args: string[], name?: string): Promise<void> };
    try {
      tuner = (await import(TUNER_CLI)) as typeof tuner;
    } catch {
      fail('tripswitch tune needs @tripswitch/tuner: npm install @tripswitch/tuner');
    }
    await tuner.main(['run', ...args], 'tripswitch tune');
  });

/** Loads the dashboard handler if packages/sidecar/src/dashboard provides one. */
async function dashboardHook(sidecar: Sidecar) {
  try {
    const mod = (await import('./dashboard/index.js' as string)) as {
      createDashboardHandler?: (s: Sidecar) => ((
        req: unknown,
        res: unknown,
      ) => boolean | Promise<boolean>) & {
        collector?: { sync(): void };
      };
    };
    return mod.createDashboardHandler?.(sidecar);
  } catch {
    return undefined;
  }
}

program
  .command('proxy')
  .requiredOption('-c, --config <file>', 'YAML config')
  .option('--no-watch', 'do not reload when the file changes (SIGHUP still reloads)')
  .description('run the proxy and its admin listener')
  .action(async (opts: { config: string; watch: boolean }) => {
    const log = stderrLogger;
    let sidecar: Sidecar;
    let admin: AdminServer;
    let dashboard: Awaited<ReturnType<typeof dashboardHook>>;
    // workers > 1: the worker threads serve the listeners; `sidecar` is the main thread's view of
    // their shared counts, for the admin API and the dashboard
    let pool: WorkerPool | undefined;
    try {
      const config = loadConfig(opts.config);
      if ((config.workers ?? 1) > 1) {
        // the view records traces (its breaker settles every worker's calls)
        pool = await startWorkers(config, {
          logger: log,
          ...(needsRecorder(config) ? { recordTrace: await loadTraceRecorder() } : {}),
        });
        sidecar = pool.view;
      } else {
        // @tripswitch/redis (and ioredis) load only for a config that shares breaker state, the
        // tuner only for one that records traces
        sidecar = new Sidecar(config, { logger: log, ...(await optionalPackages(config)) });
      }
      dashboard = await dashboardHook(sidecar);
      admin = await startAdmin(sidecar, dashboard ? { dashboard: dashboard as never } : {});
      await sidecar.start();
    } catch (err) {
      if (pool) await pool.shutdown();
      fail(err);
    }
    log.info('admin listening', { port: admin.port });
    let reloading: Promise<void> = Promise.resolve();
    const reload = (why: string) => {
      reloading = reloading.then(async () => {
        try {
          const next = loadConfig(opts.config);
          if (pool)
            await pool.reload(next, needsRecorder(next) ? { recordTrace: await loadTraceRecorder() } : {});
          else if ((next.workers ?? 1) > 1)
            throw new Error(`workers: changing it (1 -> ${next.workers}) needs a restart`);
          else await sidecar.reload(next, await optionalPackages(next));
          // The dashboard keeps history with no page open: follow the new clusters' breakers now.
          dashboard?.collector?.sync();
          log.info('reloaded', { why });
        } catch (err) {
          log.error('reload failed; keeping the running config', {
            why,
            error: isConfigError(err) ? err.problems : String(err),
          });
        }
      });
    };
    process.on('SIGHUP', () => reload('SIGHUP'));
    if (opts.watch) {
      let timer: TimerHandle | undefined;
      // The directory, not the file: editors that save by rename would leave a file watcher on a
      // deleted inode.
      const file = resolve(opts.config);
      watch(dirname(file), (_event, name) => {
        if (name !== null && name !== basename(file)) return;
        if (timer !== undefined) sidecar.clock.clearTimeout(timer);
        timer = sidecar.clock.setTimeout(() => reload('file changed'), 200).unref();
      }).unref();
    }
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('draining', { signal, inflight: sidecar.inflight });
      const drained = pool ? await pool.shutdown() : await sidecar.shutdown();
      await admin.close();
      log.info('stopped', { drained });
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });

const demo = program
  .command('demo')
  .description(
    'the cascade demo: Service A calls an unstable Service B under load (healthy -> outage -> recovery), without and with tripswitch',
  )
  .option(
    '-d, --duration <seconds>',
    'length of each run, split 2:4.5:4.5 into healthy, outage, recovery',
    '22',
  )
  .option('-c, --concurrency <n>', 'concurrent load clients (20% of them on /profile)', '20')
  .option('-w, --workers <n>', "Service A's worker pool: requests it handles at once (the rest queue)", '10')
  .option('--outage <mode>', 'what Service B does in the outage: hanging, failing or slow', 'hanging')
  .option(
    '--last-good-ttl <seconds>',
    'protected: how long the last good answer is served; after it the answer is degraded (x-degraded: 1)',
    '60',
  )
  .option(
    '--client-timeout <seconds>',
    "A's HTTP client timeout for calls to B, all that bounds an unprotected call (default: 10/9 of the outage, 1 to 10 s)",
  )
  .option(
    '--keep-running',
    'after the report keep Service B, an unprotected and a protected Service A (with /metrics and the dashboard) up on fixed ports until Ctrl-C',
  )
  .option(
    '--port <base>',
    'with --keep-running: Service B on <base>, the unprotected A on <base>+1, the protected A on <base>+2',
    '3000',
  )
  .option('--json', 'print the result as JSON on stdout (progress goes to stderr)')
  .action(
    async (opts: {
      duration: string;
      concurrency: string;
      workers: string;
      outage: string;
      clientTimeout?: string;
      lastGoodTtl: string;
      keepRunning?: boolean;
      port: string;
      json?: boolean;
    }) => {
      const { runDemo, formatReport } = await import('./demo/index.js');
      const seconds = Number(opts.duration);
      const concurrency = Number(opts.concurrency);
      if (!(seconds >= 1 && seconds <= 3600))
        fail(`--duration must be a number of seconds in [1, 3600], got "${opts.duration}"`);
      if (!Number.isInteger(concurrency) || concurrency < 2 || concurrency > 1000)
        fail(`--concurrency must be an integer in [2, 1000], got "${opts.concurrency}"`);
      const workers = Number(opts.workers);
      if (!Number.isInteger(workers) || workers < 1 || workers > 10_000)
        fail(`--workers must be an integer in [1, 10000], got "${opts.workers}"`);
      if (opts.outage !== 'hanging' && opts.outage !== 'failing' && opts.outage !== 'slow')
        fail(`--outage must be hanging, failing or slow, got "${opts.outage}"`);
      const ttl = Number(opts.lastGoodTtl);
      if (!(ttl >= 0 && ttl <= 86_400))
        fail(`--last-good-ttl must be a number of seconds in [0, 86400], got "${opts.lastGoodTtl}"`);
      const clientTimeout = opts.clientTimeout === undefined ? undefined : Number(opts.clientTimeout);
      if (clientTimeout !== undefined && !(clientTimeout >= 0.01 && clientTimeout <= 600))
        fail(`--client-timeout must be a number of seconds in [0.01, 600], got "${opts.clientTimeout}"`);
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 1 || port > 65_533)
        fail(`--port must be an integer in [1, 65533] (three ports from it), got "${opts.port}"`);
      const ms = seconds * 1000;
      const out = opts.json ? process.stderr : process.stdout;
      const stop = new AbortController();
      let signals = 0;
      const onSignal = () => {
        signals++;
        if (signals > 1) process.exit(130);
        out.write('\nstopping (Ctrl-C again to quit at once)\n');
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let result: Awaited<ReturnType<typeof runDemo>>;
      try {
        result = await runDemo({
          phases: { healthy: (ms * 2) / 11, outage: (ms * 4.5) / 11, recovery: (ms * 4.5) / 11 },
          concurrency,
          workers,
          outage: opts.outage,
          ...(clientTimeout !== undefined ? { clientTimeoutMs: clientTimeout * 1000 } : {}),
          lastGoodTtlMs: ttl * 1000,
          keepRunning: opts.keepRunning === true,
          port,
          signal: stop.signal,
          log: (line) => out.write(line),
        });
      } catch (err) {
        fail(err);
      }
      if (opts.json) {
        const { kept, ...rest } = result;
        process.stdout.write(
          `${JSON.stringify({ ...rest, kept: kept && { ...kept, close: undefined } }, null, 2)}\n`,
        );
      } else process.stdout.write(formatReport(result));
      if (result.kept === undefined) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.exitCode = result.aborted ? 130 : 0;
        return;
      }
      const kept = result.kept;
      out.write(`\n${kept.text}`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await kept.close();
      process.exitCode = 0;
    },
  );

// `demo mode hanging --port 3001`: the --port after the subcommand is the subcommand's, not demo's
// (commander needs positional options on every command above it; the root has none of its own).
program.enablePositionalOptions();
demo.enablePositionalOptions();
demo
  .command('mode')
  .argument('[mode]', 'healthy, slow, failing, hanging or recovering; none: print the current mode')
  .option('--port <base>', 'the base port the services were started with (Service B listens there)', '3000')
  .description("switch the kept Service B's behaviour (started by `tripswitch demo --keep-running`)")
  .action(async (mode: string | undefined, opts: { port: string }) => {
    const { demoMode } = await import('./demo/index.js');
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      fail(`--port must be an integer in [1, 65535], got "${opts.port}"`);
    try {
      const now = await demoMode(mode, { port });
      process.stdout.write(`Service B (127.0.0.1:${port}) is ${now}\n`);
    } catch (err) {
      fail(err);
    }
  });

await program.parseAsync(process.argv);
