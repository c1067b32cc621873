// One sidecar process for shared-state.test.ts: a Sidecar built from the YAML it is sent, with
// shared_state stores from @tripswitch/redis, driven over IPC. Not a test, not published.
import { parseConfig } from './config/load.js';
import { Sidecar } from './proxy/server.js';
import { loadSharedState, type SharedStore } from './shared-state.js';

type Req =
  | { id: number; op: 'start'; yaml: string }
  | { id: number; op: 'state' }
  | { id: number; op: 'exit' };

let sidecar: Sidecar | undefined;
const stores: SharedStore[] = [];
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

async function handle(req: Req): Promise<unknown> {
  switch (req.op) {
    case 'start': {
      const make = await loadSharedState();
      sidecar = new Sidecar(parseConfig(req.yaml), {
        logger: quiet,
        sharedState: (cluster, settings, ctx) => {
          const s = make(cluster, settings, ctx);
          stores.push(s);
          return s;
        },
      });
      await sidecar.start();
      // subscribed and synchronised before the test trips anything
      const ready = await Promise.all(
        stores.map((s) => (s as SharedStore & { ready(ms: number): Promise<boolean> }).ready(10_000)),
      );
      return { port: sidecar.addresses()[0]!.port, ready, stores: stores.length };
    }
    case 'state':
      return { state: sidecar!.clusters.get('api')!.breaker!.state };
    case 'exit':
      await sidecar?.shutdown(1000);
      process.nextTick(() => process.disconnect?.());
      return { bye: true };
  }
}

process.on('message', (req: Req) => {
  handle(req).then(
    (result) => process.send?.({ id: req.id, result }),
    (err: unknown) => process.send?.({ id: req.id, error: String(err) }),
  );
});
