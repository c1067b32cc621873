#!/usr/bin/env node
/**
 * The `tripswitch` command: `proxy --config FILE`, `validate FILE`, `export envoy|istio --config FILE`.
 * @module
 */
import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { type AdminServer, startAdmin } from './admin/admin.js';
import { isConfigError, loadConfig } from './config/load.js';
import { toEnvoy, toIstio } from './export/export.js';
import { Sidecar, stderrLogger } from './proxy/server.js';

const program = new Command();
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

/** Loads the dashboard handler if packages/sidecar/src/dashboard provides one. */
async function dashboardHook(sidecar: Sidecar) {
  try {
    const mod = (await import('./dashboard/index.js' as string)) as {
      createDashboardHandler?: (s: Sidecar) => (req: unknown, res: unknown) => boolean | Promise<boolean>;
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
    try {
      sidecar = new Sidecar(loadConfig(opts.config), { logger: log });
      const dashboard = await dashboardHook(sidecar);
      admin = await startAdmin(sidecar, dashboard ? { dashboard: dashboard as never } : {});
      await sidecar.start();
    } catch (err) {
      fail(err);
    }
    log.info('admin listening', { port: admin.port });
    let reloading: Promise<void> = Promise.resolve();
    const reload = (why: string) => {
      reloading = reloading.then(async () => {
        try {
          await sidecar.reload(loadConfig(opts.config));
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
      let timer: NodeJS.Timeout | undefined;
      // The directory, not the file: editors that save by rename would leave a file watcher on a
      // deleted inode.
      const file = resolve(opts.config);
      watch(dirname(file), (_event, name) => {
        if (name !== null && name !== basename(file)) return;
        clearTimeout(timer);
        timer = setTimeout(() => reload('file changed'), 200);
        timer.unref();
      }).unref();
    }
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('draining', { signal, inflight: sidecar.inflight });
      const drained = await sidecar.shutdown();
      await admin.close();
      log.info('stopped', { drained });
      process.exit(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });

await program.parseAsync(process.argv);
