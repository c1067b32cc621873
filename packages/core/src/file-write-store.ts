/**
 * `fileWriteStore()`: a durable {@link WriteQueueStore} in one append-only file of JSON lines.
 *
 * Why this shape: an append plus `fdatasync` is the cheapest write a disk makes durable, and a
 * line that a crash cut short can only be the last one, so it is recognised and dropped on load.
 * Appends that arrive while a flush is running go out together in the next one (group commit),
 * so a burst of queued writes costs a few syncs, not one each. Removals append a tombstone; when
 * tombstones outnumber live writes the file is rewritten beside itself and renamed over (atomic
 * on POSIX), so it never holds more than about twice the waiting writes.
 *
 * Published as `tripswitch/file-store`, not from the root entry: it needs `node:fs`, and the root
 * entry loads where there is no file system (browsers, workers).
 *
 * @module file-store
 */
import { mkdir, type FileHandle, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { validator, rejectUnknownKeys } from './validate.js';
import type { QueuedWrite, WriteQueueStore } from './write-queue.js';

/**
 * Options of {@link fileWriteStore}.
 *
 * @example
 * ```ts
 * fileWriteStore('outbox.jsonl', { fsync: false, compactAfter: 10_000 });
 * ```
 */
export interface FileWriteStoreOptions {
  /**
   * `fdatasync` before an append resolves. Off, a write survives a process crash but not a power
   * loss or kernel crash.
   * @default true
   */
  fsync?: boolean;
  /** Rewrite the file once it holds more than this many tombstones (and more tombstones than writes). @default 1_000 */
  compactAfter?: number;
}

const OWNER = 'fileWriteStore';

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

class FileStore<T> implements WriteQueueStore<T> {
  readonly #path: string;
  readonly #lockPath: string;
  readonly #fsync: boolean;
  readonly #compactAfter: number;
  #fh: FileHandle | undefined;
  #loaded = false;
  #closed = false;
  /** Waiting writes, in queue order: id -> its line (for compaction) and its parsed form. */
  #live = new Map<string, string>();
  #tombstones = 0;
  /** Bytes known to be in the file: a failed append is cut back to here, never left half written. */
  #size = 0;
  #batch: string[] = [];
  #waiters: Waiter[] = [];
  #flushing: Promise<void> | undefined;

  constructor(path: string, options: FileWriteStoreOptions | undefined) {
    const v = validator(OWNER);
    this.#path = v.string('path', path);
    const o = v.optionalObject('options', options) ?? {};
    rejectUnknownKeys(OWNER, o, ['fsync', 'compactAfter']);
    this.#fsync = v.optionalBoolean('fsync', o.fsync) ?? true;
    this.#compactAfter = v.optionalNumber('compactAfter', o.compactAfter, { min: 0, integer: true }) ?? 1_000;
    this.#lockPath = `${this.#path}.lock`;
  }

  async load(): Promise<QueuedWrite<T>[]> {
    if (this.#loaded) throw new Error(`${OWNER}: load() was already called for ${this.#path}`);
    this.#loaded = true;
    await mkdir(dirname(this.#path), { recursive: true });
    await this.#lock();
    try {
      return await this.#read();
    } catch (err) {
      await this.#unlock();
      throw err;
    }
  }

  async #read(): Promise<QueuedWrite<T>[]> {
    let text = '';
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const writes = new Map<string, QueuedWrite<T>>();
    let good = 0; // bytes up to the end of the last complete line
    let start = 0;
    let lineNo = 0;
    while (start < text.length) {
      const nl = text.indexOf('\n', start);
      lineNo++;
      if (nl < 0) break; // no newline: cut short by a crash mid-append; dropped below
      const line = text.slice(start, nl);
      start = nl + 1;
      const bytes = Buffer.byteLength(line) + 1;
      if (line.length > 0) {
        let rec: { a?: unknown; t?: unknown; d?: unknown; r?: unknown };
        try {
          rec = JSON.parse(line);
        } catch {
          throw this.#damaged(lineNo);
        }
        if (typeof rec !== 'object' || rec === null) throw this.#damaged(lineNo);
        if (typeof rec.a === 'string' && typeof rec.t === 'number') {
          writes.set(rec.a, { id: rec.a, data: rec.d as T, enqueuedAt: rec.t });
          this.#live.set(rec.a, line);
        } else if (typeof rec.r === 'string') {
          writes.delete(rec.r);
          this.#live.delete(rec.r);
          this.#tombstones++;
        } else throw this.#damaged(lineNo);
      }
      good += bytes;
    }
    this.#fh = await open(this.#path, 'a');
    this.#size = good;
    if (good < Buffer.byteLength(text)) await this.#fh.truncate(good);
    if (this.#mustCompact()) await this.#compact();
    return [...writes.values()];
  }

  #damaged(lineNo: number): Error {
    return new Error(
      `${OWNER}: ${this.#path} line ${lineNo} is not a queue record; the file was not changed (move it aside to start empty)`,
    );
  }

  async #lock(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(this.#lockPath, 'wx');
        await fh.writeFile(`${process.pid}\n`);
        await fh.close();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = Number.parseInt(await readFile(this.#lockPath, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid))
        throw new Error(
          `${OWNER}: ${this.#path} is in use by process ${pid} (lock ${this.#lockPath}); two queues must not share a file`,
        );
      // The holder is gone (killed before close()): the lock is stale.
      await unlink(this.#lockPath).catch(() => {});
    }
    throw new Error(`${OWNER}: could not take the lock ${this.#lockPath}`);
  }

  async #unlock(): Promise<void> {
    await unlink(this.#lockPath).catch(() => {});
  }

  append(write: QueuedWrite<T>): Promise<void> {
    let line: string;
    try {
      line = JSON.stringify({ a: write.id, t: write.enqueuedAt, d: write.data });
    } catch (err) {
      return Promise.reject(
        new TypeError(`${OWNER}: the write's data must be JSON-serialisable (${(err as Error).message})`),
      );
    }
    return this.#write(`${line}\n`).then(() => {
      this.#live.set(write.id, line);
    });
  }

  remove(id: string): Promise<void> {
    if (!this.#live.delete(id)) return Promise.resolve();
    this.#tombstones++;
    return this.#write(`${JSON.stringify({ r: id })}\n`);
  }

  #write(text: string): Promise<void> {
    if (this.#fh === undefined)
      return Promise.reject(
        new Error(`${OWNER}: ${this.#path} is ${this.#closed ? 'closed' : 'not loaded'}`),
      );
    return new Promise<void>((resolve, reject) => {
      this.#batch.push(text);
      this.#waiters.push({ resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  async #flush(): Promise<void> {
    try {
      while (this.#batch.length > 0 || this.#mustCompact()) {
        if (this.#batch.length === 0) {
          await this.#compact().catch(() => {}); // an old file is still a correct file
          continue;
        }
        const buf = Buffer.from(this.#batch.join(''));
        const waiters = this.#waiters;
        this.#batch = [];
        this.#waiters = [];
        try {
          await writeAll(this.#fh!, buf);
          if (this.#fsync) await this.#fh!.datasync();
          this.#size += buf.length;
          for (const w of waiters) w.resolve();
        } catch (err) {
          // Cut a partial append off, so the next one starts on a line of its own.
          await this.#fh!.truncate(this.#size).catch(() => {});
          for (const w of waiters) w.reject(err);
        }
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  #mustCompact(): boolean {
    return this.#tombstones > this.#compactAfter && this.#tombstones > this.#live.size;
  }

  async #compact(): Promise<void> {
    const tmp = `${this.#path}.tmp`;
    const lines = [...this.#live.values()];
    const buf = Buffer.from(lines.length > 0 ? `${lines.join('\n')}\n` : '');
    const out = await open(tmp, 'w');
    try {
      await writeAll(out, buf);
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.#path);
    await syncDir(dirname(this.#path));
    const old = this.#fh!;
    this.#fh = await open(this.#path, 'a');
    await old.close().catch(() => {});
    this.#size = buf.length;
    this.#tombstones = 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#flushing) await this.#flushing;
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
    if (this.#loaded) await this.#unlock();
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename itself durable; not every platform lets a directory be opened, hence best effort.
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {}
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A durable {@link WriteQueueStore}: one append-only file of JSON lines, synced before each
 * append resolves (with concurrent appends sharing one sync), compacted as it goes, locked
 * against a second process (`<path>.lock`, taken over when its holder has died). Writes must be
 * JSON-serialisable. A line a crash cut short is dropped on load; any other unreadable line stops
 * the load with its line number and leaves the file as it was.
 *
 * @example
 * ```ts
 * import { writeQueue } from 'tripswitch';
 * import { fileWriteStore } from 'tripswitch/file-store';
 * const outbox = writeQueue({ store: fileWriteStore('/var/lib/shop/outbox.jsonl'), send, breaker });
 * ```
 */
export function fileWriteStore<T = unknown>(
  path: string,
  options?: FileWriteStoreOptions,
): WriteQueueStore<T> {
  return new FileStore<T>(path, options);
}
