/**
 * The process's garbage collections on `/metrics`, under prom-client's standard name
 * (`nodejs_gc_duration_seconds{kind}`, a histogram: `_count` is the number of collections, `_sum`
 * the time the thread was paused), so that the Node.js dashboards people already use read it. Every
 * collection is counted (prom-client's own collector reads only the first of a batch of entries).
 * One `PerformanceObserver`: V8 reports each pause, nothing runs per request.
 * @module
 */
// biome-ignore lint/style/noRestrictedImports: V8's GC reports, not a clock (nothing here reads the time)
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { Histogram, type Registry } from 'prom-client';

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/**
 * Registers `nodejs_gc_duration_seconds` on `registry`, fed by this thread's collections from now
 * on; returns the function that stops observing.
 *
 * @example
 * ```ts
 * const stop = gcMetrics(registry);
 * stop(); // with the registry's dispose()
 * ```
 */
export function gcMetrics(registry: Registry): () => void {
  const histogram = new Histogram({
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.1, 1],
    registers: [registry],
  });
  // Labelled children made once (each kind shown from 0): nothing is made per collection.
  const byKind = new Map(
    Object.entries(KINDS).map(([k, kind]) => {
      histogram.zero({ kind });
      return [Number(k), histogram.labels({ kind })];
    }),
  );
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      byKind.get(kind ?? -1)?.observe(e.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
