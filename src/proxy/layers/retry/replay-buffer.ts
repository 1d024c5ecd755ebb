// Keeps the first bytes of a request body (up to a limit) so that a retry can send the body again: each attempt gets
// its own stream that replays what was recorded and then goes on with the rest as it arrives from the client.
// Once the body outgrows the limit the record is dropped and no further attempt is possible.

import { Readable } from 'node:stream';

/** The body stream of one attempt; it reads through its buffer, which pulls from the client only when asked. */
class AttemptBody extends Readable {
  constructor(private readonly owner: ReplayBuffer) {
    super();
  }

  override _read(): void {
    this.owner.pull(this);
  }
}

export class ReplayBuffer {
  private chunks: Buffer[] = [];
  private recorded = 0;
  private overflowed = false;
  private ended = false;
  private failure: Error | null = null;
  private current: AttemptBody | null = null;
  /** Recorded chunks the current attempt has been given. */
  private delivered = 0;
  /** The current attempt has caught up with the record and now takes chunks straight from the source. */
  private live = false;
  private attemptsMade = 0;
  /** Bytes read from the client so far. */
  bytesRead = 0;

  constructor(
    private readonly source: Readable,
    readonly limitBytes = 64 * 1024,
  ) {
    source.on('data', (chunk: Buffer) => this.onData(chunk));
    source.on('end', () => this.onEnd());
    source.on('error', (err: Error) => this.onError(err));
    // An HTTP/1 request or HTTP/2 stream the client cut off says 'aborted' (and an HTTP/2 one may still say 'end').
    source.on('aborted', () => this.onError(new Error('the client aborted the request body')));
    source.pause();
  }

  /** Whether a new attempt can still send the whole body: nothing read so far was dropped, and the client did not fail. */
  get replayable(): boolean {
    return !this.overflowed && this.failure === null;
  }

  /** The whole body has been read from the client. */
  get complete(): boolean {
    return this.ended;
  }

  /**
   * The body stream for the next attempt; a previous attempt's stream is ended without error and gets nothing more.
   * Throws once the body is no longer replayable (check `replayable` first; the first attempt always works).
   */
  nextAttempt(): Readable {
    if (this.attemptsMade > 0 && !this.replayable) throw new Error('the request body can no longer be replayed');
    this.attemptsMade++;
    const previous = this.current;
    this.current = new AttemptBody(this);
    this.delivered = 0;
    this.live = false;
    this.source.pause();
    previous?.destroy();
    return this.current;
  }

  /** No more attempts will come: drop the record (the current attempt keeps streaming). */
  release(): void {
    this.overflowed = true;
    // An attempt still replaying needs the record until it has caught up; pull() drops it then.
    if (this.live) this.dropRecord();
  }

  /** @internal Called by an attempt's stream when it wants data. */
  pull(body: AttemptBody): void {
    if (body !== this.current) return;
    if (!this.live) {
      // Replay the record first; the source stays paused until the attempt has caught up.
      while (this.delivered < this.chunks.length) {
        if (!body.push(this.chunks[this.delivered++])) return;
      }
      this.live = true;
      if (this.overflowed) this.dropRecord();
    }
    if (this.failure !== null) body.destroy(this.failure);
    else if (this.ended) body.push(null);
    else this.source.resume();
  }

  private onData(chunk: Buffer): void {
    this.bytesRead += chunk.length;
    const body = this.current;
    if (body === null || !this.live) {
      // The source is paused then, so this should not happen; if it does, the chunk queues behind the replay.
      this.chunks.push(chunk);
      this.recorded += chunk.length;
      if (this.recorded > this.limitBytes) this.overflowed = true;
      this.source.pause();
      return;
    }
    if (!this.overflowed) {
      if (this.recorded + chunk.length <= this.limitBytes) {
        this.chunks.push(chunk);
        this.recorded += chunk.length;
        this.delivered = this.chunks.length;
      } else {
        this.release();
      }
    }
    // The source only flows while a live attempt asks for data; pause again as soon as that attempt is full.
    if (!body.push(chunk)) this.source.pause();
  }

  private dropRecord(): void {
    this.chunks = [];
    this.recorded = 0;
    this.delivered = 0;
  }

  private onEnd(): void {
    if ((this.source as { aborted?: boolean }).aborted === true) return this.onError(new Error('the client aborted the request body'));
    this.ended = true;
    if (this.current !== null && this.live) this.current.push(null);
  }

  private onError(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    if (this.current !== null && this.live) this.current.destroy(err);
  }
}
