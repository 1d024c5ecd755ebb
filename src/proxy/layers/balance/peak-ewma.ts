// Peak-EWMA (Finagle / Linkerd style): cost = RTT estimate x (in flight + 1), compared between two random endpoints.
// The estimate jumps up to any slower observation at once (peak), drifts down toward faster ones, and decays toward
// zero while an endpoint is idle so that one shunned for being slow gets probed again once the slowness may be over.

import { EndpointBalancer, type BalancedEndpoint, type BalancerClock, type EndpointState } from './endpoint-set.js';

export interface PeakEwmaOptions {
  /** Time constant of the moving average and of the idle decay, ms (default 10 s). */
  decayMs?: number;
  /** Estimate of a new endpoint when there is no other endpoint to learn from, ms (default 30 ms). */
  defaultRttMs?: number;
  /** A failed request counts as at least this RTT, so an endpoint failing fast draws no extra traffic (default 0: off). */
  failurePenaltyMs?: number;
}

export class PeakEwmaBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends EndpointBalancer<E> {
  private readonly decayMs: number;
  private readonly defaultRttMs: number;
  private readonly failurePenaltyMs: number;
  /** What a new endpoint starts with during an update: the mean estimate of the endpoints already known. */
  private startRttMs: number;

  constructor(clock: BalancerClock, options: PeakEwmaOptions = {}) {
    super(clock);
    this.decayMs = Math.max(1, options.decayMs ?? 10_000);
    this.defaultRttMs = Math.max(0, options.defaultRttMs ?? 30);
    this.failurePenaltyMs = Math.max(0, options.failurePenaltyMs ?? 0);
    this.startRttMs = this.defaultRttMs;
  }

  /**
   * A new endpoint starts at the mean estimate of the known ones: a fixed guess would flood it where the service is
   * slower than the guess (a cold instance takes everything) and starve it where the service is faster.
   */
  override update(endpoints: readonly E[]): void {
    const now = this.clock.now();
    let sum = 0;
    for (const s of this.states) sum += this.estimate(s, now);
    this.startRttMs = this.states.length > 0 ? sum / this.states.length : this.defaultRttMs;
    super.update(endpoints);
  }

  pick(): EndpointState<E> | undefined {
    if (!this.drawTwo()) return this.first;
    const a = this.first as EndpointState<E>;
    const b = this.second as EndpointState<E>;
    const now = this.clock.now();
    return this.cost(b, now) < this.cost(a, now) ? b : a;
  }

  /** The load figure a pick compares: decayed RTT estimate times the requests it would queue behind. */
  cost(s: EndpointState<E>, now: number): number {
    return this.estimate(s, now) * (s.inFlight + 1);
  }

  override end(s: EndpointState<E>, rttMs: number, ok: boolean): void {
    super.end(s, rttMs, ok);
    const now = this.clock.now();
    const rtt = ok ? rttMs : Math.max(rttMs, this.failurePenaltyMs);
    const current = this.estimate(s, now);
    if (rtt >= current) {
      s.rttMs = rtt;
    } else {
      // Weight the new sample by how long it has been since the last one: a burst of fast answers cannot
      // erase a slow one at once, a fast answer after a long gap counts for much.
      const w = Math.exp(-Math.max(0, now - s.rttAt) / this.decayMs);
      s.rttMs = current * w + rtt * (1 - w);
    }
    s.rttAt = now;
  }

  protected override newState(e: E): EndpointState<E> {
    const s = super.newState(e);
    s.rttMs = this.startRttMs;
    return s;
  }

  private estimate(s: EndpointState<E>, now: number): number {
    const idle = now - s.rttAt;
    return idle <= 0 ? s.rttMs : s.rttMs * Math.exp(-idle / this.decayMs);
  }
}
