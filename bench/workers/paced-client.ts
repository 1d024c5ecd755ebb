// A fixed-rate HTTP/1.1 client run as its own process (e.g. inside another host's network namespace by
// bench/hosts.ts): argv[2] is the JSON of pacedLoad's options plus `port`; prints the PacedResult as JSON.
import { pacedLoad } from '../lib/paced-load.js';

const o = JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof pacedLoad>[1] & { port: number };
process.stdout.write(JSON.stringify(await pacedLoad(o.port, o)) + '\n');
