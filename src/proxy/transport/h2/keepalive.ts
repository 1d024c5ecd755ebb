// HTTP/2 keepalive of one client session: a PING every interval, and a silence detector. Nothing received within the
// timeout (no PING answer, no byte at all) makes the session suspect: the owner stops using it, its streams finish on
// their own deadlines. A suspect session that stays silent a few timeouts more is dead and destroyed with its socket.

import type { ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { MycelError } from '../../../core/errors.js';

export interface KeepaliveSettings {
  intervalMs: number;
  timeoutMs: number;
}

/**
 * Timeouts of silence, after the one that made the session suspect, before it is destroyed as dead. A live link
 * stalled on TCP retransmits resumes within a few backoffs; a peer behind a silent partition never does.
 */
export const DEAD_AFTER_TIMEOUTS = 3;

/**
 * Watches one session from its connect to its socket's close. Any byte read (socket.bytesRead counts the cleartext of
 * a TLS socket too) proves the peer alive: a PING answer queued behind retransmitted DATA is not a dead peer. One
 * PING at a time; its timer is the only one armed per timeout (none per request).
 */
export class SessionKeepalive {
  /** Set once a timeout passed with nothing received; the session never goes back into service. */
  suspect = false;
  private readonly tick: NodeJS.Timeout;
  /** Times one timeout of silence (a PING out, or a suspect or finished session whose socket is still open). */
  private wait: NodeJS.Timeout | null = null;
  /** socket.bytesRead when the silence being timed began. */
  private mark = 0;
  /** Timeouts in a row with nothing received. */
  private silent = 0;
  private readonly onPong: (err: Error | null) => void;

  constructor(
    readonly session: ClientHttp2Session,
    readonly socket: Socket,
    readonly settings: KeepaliveSettings,
    /** Told once, at the first silent timeout: take the session out of service (GOAWAY, no new streams). */
    private readonly onSuspect: (k: SessionKeepalive) => void,
  ) {
    this.onPong = (err) => {
      if (err !== null) return; // the session is going; the silence timer goes on watching its socket
      this.silent = 0;
      this.disarm();
    };
    this.tick = setInterval(onTick, settings.intervalMs, this);
    this.tick.unref();
    socket.once('close', () => this.stop());
  }

  /** Starts timing a silence, with a PING while the session can still send one. */
  ping(): void {
    if (this.wait !== null || this.socket.destroyed) return; // a PING or a silence is being timed already
    this.arm();
    if (this.session.destroyed) return;
    try {
      this.session.ping(this.onPong);
    } catch {
      // A session closing under us: its socket's silence is still timed, and its close stops everything.
    }
  }

  /** One timeout passed without the PING's answer. */
  expired(): void {
    this.wait = null;
    if (this.socket.destroyed) return this.stop();
    const read = this.socket.bytesRead;
    if (read !== this.mark) {
      // Bytes came in, the answer has not yet: the link is slow, not dead. Keep waiting for it.
      this.silent = 0;
      this.arm();
      return;
    }
    this.silent++;
    if (!this.suspect) {
      this.suspect = true;
      this.onSuspect(this);
    }
    if (this.silent > DEAD_AFTER_TIMEOUTS) return this.dead();
    this.arm();
  }

  stop(): void {
    clearInterval(this.tick);
    this.disarm();
  }

  private dead(): void {
    this.stop();
    const ms = this.silent * this.settings.timeoutMs;
    // Streams still open fail with this (retried by policy); the socket goes too, whatever it still had to write.
    this.session.destroy(new MycelError('upstream-reset', `the peer sent nothing for ${ms} ms after an HTTP/2 keepalive PING`));
    this.socket.destroy();
  }

  private arm(): void {
    this.mark = this.socket.bytesRead;
    this.wait = setTimeout(onExpired, this.settings.timeoutMs, this);
    this.wait.unref();
  }

  private disarm(): void {
    if (this.wait === null) return;
    clearTimeout(this.wait);
    this.wait = null;
  }
}

function onTick(k: SessionKeepalive): void {
  k.ping();
}

function onExpired(k: SessionKeepalive): void {
  k.expired();
}
