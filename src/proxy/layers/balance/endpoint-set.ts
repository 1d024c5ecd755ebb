// Per-endpoint balancer state and the base every picker extends: it keeps the endpoint list and carries the state
// of endpoints that stay across updates (in-flight counts, RTT estimates), so a config push does not reset them.

/** What a balancer needs of an endpoint: a stable key (address:port). The proxy's EndpointTarget fits. */
export interface BalancedEndpoint {
  readonly key: string;
}

export class EndpointState<E extends BalancedEndpoint = BalancedEndpoint> {
  /** Requests started on this endpoint and not yet ended. */
  inFlight = 0;
  /** Peak-EWMA round-trip estimate in ms and when (now()) it was last set; only the EWMA picker uses them. */
  rttMs: number;
  rttAt: number;

  constructor(
    /** Replaced by the newest object for the same key at each update (labels may change). */
    public endpoint: E,
    rttMs: number,
    rttAt: number,
  ) {
    this.rttMs = rttMs;
    this.rttAt = rttAt;
  }
}

export interface BalancerClock {
  /** Milliseconds from any fixed origin (performance.now() by default); tests pass mock time. */
  now: () => number;
  /** Uniform in [0, 1); tests pass a seeded generator. */
  random: () => number;
}

export abstract class EndpointBalancer<E extends BalancedEndpoint = BalancedEndpoint> {
  protected states: EndpointState<E>[] = [];

  constructor(protected readonly clock: BalancerClock) {}

  /** The current endpoints with their state, in the order given to update(). */
  get endpoints(): readonly EndpointState<E>[] {
    return this.states;
  }

  /**
   * Replaces the endpoint set (config push, health or ejection change). Endpoints whose key stays keep their state;
   * a repeated key counts once. Hash pickers rebuild their ring or table here, never per request.
   */
  update(endpoints: readonly E[]): void {
    const previous = new Map<string, EndpointState<E>>();
    for (const s of this.states) previous.set(s.endpoint.key, s);
    const seen = new Set<string>();
    const next: EndpointState<E>[] = [];
    for (const e of endpoints) {
      if (seen.has(e.key)) continue;
      seen.add(e.key);
      const kept = previous.get(e.key);
      if (kept !== undefined) kept.endpoint = e;
      next.push(kept ?? this.newState(e));
    }
    this.states = next;
    this.rebuild();
  }

  /** Chooses an endpoint; `hashKey` matters only to the hash pickers. Undefined when there are no endpoints. */
  abstract pick(hashKey?: string): EndpointState<E> | undefined;

  /** Call when a request is sent to `s`. */
  start(s: EndpointState<E>): void {
    s.inFlight++;
  }

  /** Call once when that request ends (response complete, or failed), with its round trip in ms. */
  end(s: EndpointState<E>, _rttMs: number, _ok: boolean): void {
    if (s.inFlight > 0) s.inFlight--;
  }

  protected newState(e: E): EndpointState<E> {
    return new EndpointState(e, 0, this.clock.now());
  }

  /** Called after every update, for pickers with derived structures. */
  protected rebuild(): void {}

  /** Round-robin cursor shared by the plain picker and the hash pickers' no-key fallback. */
  private cursor = -1;

  protected nextInTurn(): EndpointState<E> | undefined {
    const n = this.states.length;
    if (n === 0) return undefined;
    // A random start keeps many proxies from sending their first requests to the same endpoint.
    this.cursor = this.cursor < 0 ? Math.floor(this.clock.random() * n) : (this.cursor + 1) % n;
    if (this.cursor >= n) this.cursor = 0;
    return this.states[this.cursor];
  }

  /** The two candidates of the last drawTwo() (fields, not a returned pair, so a pick allocates nothing). */
  protected first: EndpointState<E> | undefined;
  protected second: EndpointState<E> | undefined;

  /** Draws two distinct endpoints at random for a power-of-two-choices pick; false when there are fewer than two. */
  protected drawTwo(): boolean {
    const s = this.states;
    const n = s.length;
    if (n < 2) {
      this.first = s[0];
      this.second = undefined;
      return false;
    }
    const i = Math.floor(this.clock.random() * n);
    let j = Math.floor(this.clock.random() * (n - 1));
    if (j >= i) j++;
    this.first = s[i];
    this.second = s[j];
    return true;
  }
}

/** Orders two indexes of `states` by endpoint key, so that hash structures come out the same on every proxy. */
export function compareEndpointKeys<E extends BalancedEndpoint>(states: readonly EndpointState<E>[], a: number, b: number): number {
  const ka = (states[a] as EndpointState<E>).endpoint.key;
  const kb = (states[b] as EndpointState<E>).endpoint.key;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
