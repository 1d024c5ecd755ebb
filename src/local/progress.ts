// The progress display of `mycel up` and `mycel check`: one line per step, ✓ done, ✗ failed (with the fix on the next
// line), ! a warning. On a terminal a running step shows "…" and is rewritten in place when it ends.

export type Mark = 'ok' | 'fail' | 'warn';

const SYMBOL: Record<Mark, string> = { ok: '✓', fail: '✗', warn: '!' };
const COLOR: Record<Mark, string> = { ok: '\x1b[32m', fail: '\x1b[31m', warn: '\x1b[33m' };
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

export class Progress {
  private running: string | null = null;

  constructor(
    private readonly out: { write(s: string): unknown; isTTY?: boolean } = process.stdout,
    private readonly tty: boolean = out.isTTY === true,
  ) {}

  /** Prints "… label" (terminal only) until line() or step's end replaces it. */
  start(label: string): void {
    this.running = label;
    if (this.tty) this.out.write(`\r\x1b[2K${DIM}… ${label}${RESET}`);
  }

  /** Updates the running step's text (terminal only), e.g. a count. */
  update(label: string): void {
    if (this.running !== null && this.tty) this.out.write(`\r\x1b[2K${DIM}… ${label}${RESET}`);
  }

  line(mark: Mark, label: string, detail = '', fix?: string): void {
    const symbol = this.tty ? `${COLOR[mark]}${SYMBOL[mark]}${RESET}` : SYMBOL[mark];
    const clear = this.tty && this.running !== null ? '\r\x1b[2K' : '';
    this.running = null;
    this.out.write(`${clear}${symbol} ${label}${detail ? `  ${this.tty ? DIM : ''}${detail}${this.tty ? RESET : ''}` : ''}\n`);
    if (fix !== undefined) this.out.write(`    fix: ${fix}\n`);
  }

  /** Runs `work` as a step: ✓ with the detail (and the time it took) or ✗ with the error's message, which is rethrown. */
  async step<T>(label: string, work: () => Promise<T>, detail: (value: T) => string = () => ''): Promise<T> {
    const started = Date.now();
    this.start(label);
    try {
      const value = await work();
      const d = detail(value);
      this.line('ok', label, `${d}${d ? '  ' : ''}${((Date.now() - started) / 1000).toFixed(1)} s`);
      return value;
    } catch (err) {
      this.line('fail', label, (err as Error).message.split('\n')[0]);
      throw err;
    }
  }
}
