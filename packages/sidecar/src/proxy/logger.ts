/**
 * Where the sidecar reports what it does.
 * @module
 */
/**
 * Where the sidecar reports what it does (message first; pino's argument order is the other way round).
 *
 * @example
 * ```ts
 * const logger: Logger = { info: (m, f) => log.info(f, m), warn: (m, f) => log.warn(f, m), error: (m, f) => log.error(f, m) };
 * ```
 */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
  process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
/**
 * JSON lines on stderr.
 * @example
 * ```ts
 * stderrLogger.info('listening', { port: 8080 });
 * ```
 */
export const stderrLogger: Logger = { info: line('info'), warn: line('warn'), error: line('error') };
