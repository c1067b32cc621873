/**
 * The upstream filter: one attempt's undici dispatch handler, on undici 7's handler API
 * (`onRequestStart`, `onResponseStart`, `onResponseData`, `onResponseEnd`, `onResponseError`, with
 * a `DispatchController` to pause, resume and abort). Response bytes go straight to `res.write`,
 * with backpressure through `controller.pause()` / `resume()` on the client's 'drain', and no
 * intermediate stream, promise or AbortController. What an answer is for (the client, or a retry
 * or fallback that replaces it) is decided by the subclass in {@link UpstreamHandler.forward}.
 * @module
 */
import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { LastGoodRecorder } from './fallback.js';
import { responseHeaders, seenContentLength } from './http.js';
import type { CompiledRoute } from './route.js';
import type { IncomingMessage } from 'node:http';

/** The upstream handler of a request (the exchange extends it: no object per attempt). */
export abstract class UpstreamHandler implements Dispatcher.DispatchHandler {
  abstract readonly req: IncomingMessage;
  abstract readonly res: ServerResponse;
  abstract readonly route: CompiledRoute;
  /** The attempt in progress, while undici runs it. */
  controller: Dispatcher.DispatchController | undefined;
  /** The status of the attempt's answer (0 before it). */
  status = 0;
  /** The attempt's answer is not for the client (a retry or a fallback replaces it, or nobody reads it). */
  discard = false;
  /** The client left: abort the attempt. */
  clientGone = false;
  /** Body bytes still expected when the upstream sent Content-Length, else -1. */
  #remaining = -1;
  #tail: Buffer | undefined;
  #drainHooked = false;
  #recorder: LastGoodRecorder | undefined;

  /** Decides what the attempt's answer of `status` is for: true = relay it to the client. */
  protected abstract forward(status: number): boolean;
  /** The attempt's answer ended (relayed or discarded). */
  protected abstract attemptEnded(): void;
  /** The attempt failed (connect, TLS, reset, timeout, abort, or undici refusing the request). */
  protected abstract attemptFailed(err: Error): void;

  /** Resets the per-attempt state before a dispatch. */
  protected newAttempt(): void {
    this.status = 0;
    this.discard = false;
    this.controller = undefined;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.clientGone) controller.abort(new Error('client closed'));
    else this.controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, status: number): void {
    if (status < 200) return;
    this.status = status;
    const res = this.res;
    if (!this.forward(status) || res.destroyed) {
      this.discard = true;
      return;
    }
    // The raw list keeps the upstream's names and order (undici parses it into `headers` too;
    // the fast pool does not).
    const headers = responseHeaders(controller.rawHeaders as Buffer[] | string[]);
    this.#remaining = seenContentLength;
    res.writeHead(status, headers);
    this.#recorder = LastGoodRecorder.for(this.route, this.req, status, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.discard) return;
    if (this.clientGone) {
      controller.pause();
      return;
    }
    this.#recorder?.add(chunk);
    // The chunk that completes a known Content-Length is sent with end(): one write instead of
    // write() + end() (most small responses arrive as one chunk).
    if (chunk.length === this.#remaining) {
      this.#tail = chunk;
      this.#remaining = 0;
      return;
    }
    if (this.#remaining > 0) this.#remaining -= chunk.length;
    if (this.res.write(chunk)) return;
    controller.pause();
    if (!this.#drainHooked) {
      this.#drainHooked = true;
      this.res.on('drain', () => this.controller?.resume());
    }
  }

  onResponseEnd(): void {
    if (!this.discard && !this.res.destroyed) {
      const tail = this.#tail;
      this.#tail = undefined;
      this.res.end(tail);
      this.#recorder?.commit();
    }
    this.#recorder = undefined;
    this.attemptEnded();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#recorder = undefined;
    this.attemptFailed(err);
  }
}
