// Flag parsing shared by the benchmark runners: node:util parseArgs in strict mode, --help printing the usage, and
// numeric flags checked with the usage printed on a bad value (exit code 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses `argv` (strict); with --help / -h prints `usage` and exits 0. */
export function parseFlags<O extends Options>(argv: string[], options: O, usage: string) {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    process.exit(0);
  }
  return parseArgs<{ args: string[]; options: O; strict: true }>({ args: argv, options, strict: true }).values;
}

/** A flag's value as a positive number (integer when asked), or `fallback` when absent; exits 2 on anything else. */
export function positiveFlag(name: string, v: unknown, fallback: number, usage: string, integer = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    console.error(`bench: --${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(v)}\n${usage}`);
    process.exit(2);
  }
  return n;
}
