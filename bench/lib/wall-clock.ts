// Wall-clock time shared by the benchmark's processes: the runner stamps an apply's response and the client workers
// stamp their ACKs, so both must read the same clock (sub-millisecond, unlike Date.now()).

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across processes on one machine. */
export const wallMs = (): number => performance.timeOrigin + performance.now();
