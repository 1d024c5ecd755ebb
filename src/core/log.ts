// Structured logging: one JSON object per line on stderr (stdout stays free for access logs and command output).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  enabled(level: LogLevel): boolean;
}

export type LogSink = (line: string) => void;

function parseLevel(v: string | undefined): LogLevel {
  return v === 'debug' || v === 'info' || v === 'warn' || v === 'error' ? v : 'info';
}

class JsonLogger implements Logger {
  constructor(
    private readonly min: number,
    private readonly base: LogFields,
    private readonly sink: LogSink,
  ) {}

  enabled(level: LogLevel): boolean { return ORDER[level] >= this.min; }
  debug(msg: string, fields?: LogFields): void { this.write('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.write('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.write('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.write('error', msg, fields); }
  child(fields: LogFields): Logger { return new JsonLogger(this.min, { ...this.base, ...fields }, this.sink); }

  private write(level: LogLevel, msg: string, fields: LogFields | undefined): void {
    if (ORDER[level] < this.min) return;
    // JSON.stringify escapes CR, LF and every control character, so a logged value cannot forge a line.
    const rec: LogFields = { time: new Date().toISOString(), level, msg, ...this.base, ...fields };
    let line: string;
    try {
      line = JSON.stringify(rec, errorReplacer);
    } catch {
      line = JSON.stringify({ time: rec.time, level, msg, note: 'fields were not serialisable' });
    }
    this.sink(line + '\n');
  }
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const e = value as Error & { code?: unknown };
    return { name: e.name, message: e.message, code: e.code };
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

export function createLogger(options: { level?: LogLevel | string; fields?: LogFields; sink?: LogSink } = {}): Logger {
  const level = parseLevel(options.level ?? process.env.MYCEL_LOG_LEVEL);
  const sink = options.sink ?? ((line: string) => { process.stderr.write(line); });
  return new JsonLogger(ORDER[level], options.fields ?? {}, sink);
}

/** A logger that drops everything; for tests and benchmarks that measure without log cost. */
export const silentLogger: Logger = createLogger({ level: 'error', sink: () => {} });
