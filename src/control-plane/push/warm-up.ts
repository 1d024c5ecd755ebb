// Warm-up: the first stretch of a replica that started while no other replica ran. The store may then lack endpoints
// that expired during the outage and whose sidecars have not re-registered yet, so a proxy that already serves a
// config is not sent a view that would leave a service it uses without endpoints until they are back or warm-up ends.

import type { Logger } from '../../core/log.js';

/** What the decision needs from a computed view: endpoints per service key, and how many names did not resolve. */
export interface WarmupView {
  readonly endpoints: ReadonlyMap<string, number>;
  readonly unresolved: number;
}

/**
 * Why `view` must wait before it goes to a proxy that already serves a config, or null when it may go. `sent` is what
 * this stream sent it before (null: nothing yet, so what the proxy serves is unknown and the view must be whole);
 * `self` is the proxy's own service, whose endpoints it never calls through its view.
 */
export function holdReason(view: WarmupView, sent: ReadonlyMap<string, number> | null, self: string): string | null {
  if (sent === null) {
    for (const [k, n] of view.endpoints) if (n === 0 && k !== self) return `service ${k} has no endpoint yet`;
    if (view.unresolved > 0) return `${view.unresolved} subscribed name(s) do not resolve yet`;
    return null;
  }
  for (const [k, n] of sent) if (n > 0 && k !== self && (view.endpoints.get(k) ?? 0) === 0) return `service ${k} would lose its last endpoint`;
  return null;
}

export interface WarmupOptions {
  log: Logger;
  /** Called once when the warm-up ends (not when it is stopped): release what was held. */
  onEnd: () => void;
  /** Follows the state (1 during warm-up), for the mycel_control_warmup gauge. */
  gauge?: (value: number) => void;
  now?: () => number;
}

export class Warmup {
  private timer: NodeJS.Timeout | null = null;
  private endsAt = 0;
  private readonly now: () => number;

  constructor(private readonly o: WarmupOptions) {
    this.now = o.now ?? Date.now;
  }

  get active(): boolean {
    return this.timer !== null;
  }

  /** Milliseconds left (0 when not warming up), for status and logs. */
  remainingMs(): number {
    return this.timer === null ? 0 : Math.max(0, this.endsAt - this.now());
  }

  /** Starts (or extends) a warm-up of `durationMs`; 0 or less does nothing. */
  start(durationMs: number, why: string): void {
    if (durationMs <= 0) return;
    const endsAt = this.now() + durationMs;
    if (this.timer !== null) {
      if (endsAt <= this.endsAt) return;
      clearTimeout(this.timer);
    }
    this.endsAt = endsAt;
    this.timer = setTimeout(() => this.end(), durationMs);
    this.timer.unref();
    this.o.gauge?.(1);
    this.o.log.info('warm-up: proxies that already serve a config keep it until the services they use have endpoints again', { why, warmupMs: durationMs });
  }

  /** Ends without releasing (the replica is closing). */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.o.gauge?.(0);
  }

  private end(): void {
    this.timer = null;
    this.o.gauge?.(0);
    this.o.onEnd();
  }
}
