/**
 * The entry of one worker thread of `workers: N` (started by `workers.ts`): a {@link Sidecar} on
 * the shared memory it is handed, listening with SO_REUSEPORT, driven by messages from the main
 * thread (reload, shutdown).
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SidecarConfig } from '../config/schema.js';
import { type Logger, stderrLogger } from './logger.js';
import { Sidecar } from './server.js';
import type { SharedPlan } from './shared-plan.js';

type ToWorker =
  | { type: 'reload'; config: SidecarConfig; plan: SharedPlan }
  | { type: 'shutdown' }
  /** For the tests: dies of an uncaught error, as a bug would. */
  | { type: 'crash' };

const data = workerData as {
  config: SidecarConfig;
  plan: SharedPlan;
  worker: number;
  ports?: number[];
  quiet: boolean;
};
const port = parentPort!;
const tag = { worker: data.worker };
const none = () => {};
const logger: Logger = data.quiet
  ? { info: none, warn: none, error: none }
  : {
      info: (m, f) => stderrLogger.info(m, { ...tag, ...f }),
      warn: (m, f) => stderrLogger.warn(m, { ...tag, ...f }),
      error: (m, f) => stderrLogger.error(m, { ...tag, ...f }),
    };

let sidecar: Sidecar;
try {
  sidecar = new Sidecar(data.config, {
    logger,
    share: { plan: data.plan, worker: data.worker },
    ...(data.ports ? { ports: data.ports } : {}),
  });
  await sidecar.start();
} catch (err) {
  port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'crash') throw new Error(`worker ${data.worker} crashed (on request)`);
  if (m.type === 'reload') {
    sidecar.reload(m.config, { plan: m.plan }).then(
      () => port.postMessage({ type: 'reloaded' }),
      (err: unknown) =>
        port.postMessage({
          type: 'reload-failed',
          message: err instanceof Error ? err.message : String(err),
        }),
    );
    return;
  }
  void sidecar.shutdown().then((drained) => {
    port.postMessage({ type: 'stopped', drained });
    // the thread ends here, whatever timers or pools are left
    process.exit(0);
  });
});
port.postMessage({ type: 'ready', addresses: sidecar.addresses() });
