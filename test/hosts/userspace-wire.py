#!/usr/bin/env python3
# A userspace wire: a stand-in for `tc netem` where the kernel lacks sch_netem. It opens two TAP devices (one becomes
# a test host's link, the other a port of the bed's bridge) and copies Ethernet frames between them, applying per
# direction a fixed delay, uniform jitter, random loss and reordering, changeable at run time.
#
# Usage: userspace-wire.py HOST_TAP BRIDGE_TAP   (root; creates both TAPs, which vanish when this process exits)
# "egress" is what the host sends (read from HOST_TAP), "ingress" what it receives (read from BRIDGE_TAP).
# Commands are JSON lines on stdin, each answered by one JSON line on stdout carrying the same "id":
#   {"id": 1, "op": "set", "dir": "egress"|"ingress"|"both", "delayMs": 40, "jitterMs": 20, "lossPercent": 5,
#    "reorderPercent": 25}            missing fields are 0; a new setting replaces the direction's old one
#   {"id": 2, "op": "clear"}          no impairment either way (frames already held still leave when due)
#   {"id": 3, "op": "counters"}       {"id": 3, "ok": true, "counters": {"egress": {...}, "ingress": {...}}}
# It prints {"ready": true, ...} once both TAPs are open, and exits when stdin closes (its owner died) or on SIGTERM.
#
# How it differs from netem: it sits outside the kernel, so every frame pays a few tens of microseconds of copying
# and scheduling even with no impairment; the clock is the process's (select timeouts, about a millisecond); losses
# and reorders are independent per frame (no correlation, no Gilbert-Elliott); no rate limit. Like netem, jitter may
# itself reorder frames, and "reorder" sends that share of frames at once while the rest wait the delay.

import fcntl
import heapq
import json
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
# Frames held per direction at most (netem's default limit); beyond it new frames are dropped as overflow.
LIMIT = 1000
# Frames read from one TAP per wake-up, so that one busy direction cannot starve the other or the commands.
BURST = 256


def open_tap(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    # struct ifreq: the name (16 bytes), the flags, padding to 40 bytes.
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH22x', name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Direction:
    """Frames one way: the impairment, the frames held (a heap by due time), and the counters."""

    def __init__(self, out_fd):
        self.out_fd = out_fd
        self.queue = []
        self.seq = 0
        self.max_sent_seq = -1
        self.counters = {'passed': 0, 'dropped': 0, 'reordered': 0, 'outOfOrder': 0, 'overflow': 0, 'writeErrors': 0}
        self.set({})

    def set(self, s):
        self.delay = s.get('delayMs', 0) / 1000.0
        self.jitter = s.get('jitterMs', 0) / 1000.0
        self.loss = s.get('lossPercent', 0) / 100.0
        self.reorder = s.get('reorderPercent', 0) / 100.0

    def arrive(self, frame, now):
        seq = self.seq
        self.seq += 1
        c = self.counters
        if self.loss > 0 and random.random() < self.loss:
            c['dropped'] += 1
            return
        if len(self.queue) >= LIMIT:
            c['overflow'] += 1
            return
        if self.reorder > 0 and random.random() < self.reorder:
            # Sent at once, ahead of the frames that wait the delay (netem's "reorder").
            due = now
            c['reordered'] += 1
        else:
            due = now + max(0.0, self.delay + random.uniform(-self.jitter, self.jitter))
        heapq.heappush(self.queue, (due, seq, frame))

    def flush(self, now):
        c = self.counters
        while self.queue and self.queue[0][0] <= now:
            _, seq, frame = heapq.heappop(self.queue)
            try:
                os.write(self.out_fd, frame)
            except OSError:
                c['writeErrors'] += 1
                continue
            c['passed'] += 1
            # A frame leaving after one that arrived later: reordering that really happened on the wire.
            if seq < self.max_sent_seq:
                c['outOfOrder'] += 1
            else:
                self.max_sent_seq = seq

    def next_due(self):
        return self.queue[0][0] if self.queue else None

    def report(self):
        return dict(self.counters, queued=len(self.queue))


def check_setting(cmd):
    s = {}
    for key, top in (('delayMs', 60000), ('jitterMs', 60000), ('lossPercent', 100), ('reorderPercent', 100)):
        v = cmd.get(key, 0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= top:
            raise ValueError('%s must be a number in [0, %d], not %r' % (key, top, v))
        s[key] = v
    if s['reorderPercent'] > 0 and s['delayMs'] == 0:
        raise ValueError('reordering needs a delay (as with netem)')
    return s


def handle(line, dirs):
    cmd = json.loads(line)
    op = cmd.get('op')
    if op == 'set':
        which = cmd.get('dir', 'egress')
        if which not in ('egress', 'ingress', 'both'):
            raise ValueError('dir must be egress, ingress or both, not %r' % (which,))
        s = check_setting(cmd)
        for name in ('egress', 'ingress') if which == 'both' else (which,):
            dirs[name].set(s)
        return {}
    if op == 'clear':
        for d in dirs.values():
            d.set({})
        return {}
    if op == 'counters':
        return {'counters': {name: d.report() for name, d in dirs.items()}}
    raise ValueError('unknown op %r' % (op,))


def say(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def main():
    if len(sys.argv) != 3:
        sys.stderr.write('usage: userspace-wire.py HOST_TAP BRIDGE_TAP\n')
        return 2
    host_fd = open_tap(sys.argv[1])
    bridge_fd = open_tap(sys.argv[2])
    dirs = {'egress': Direction(bridge_fd), 'ingress': Direction(host_fd)}
    readers = {host_fd: dirs['egress'], bridge_fd: dirs['ingress']}
    stdin = sys.stdin.fileno()
    pending = b''
    say({'ready': True, 'pid': os.getpid(), 'taps': sys.argv[1:]})
    while True:
        dues = [t for t in (d.next_due() for d in dirs.values()) if t is not None]
        timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
        ready, _, _ = select.select([host_fd, bridge_fd, stdin], [], [], timeout)
        now = time.monotonic()
        for fd in ready:
            if fd == stdin:
                chunk = os.read(stdin, 65536)
                if not chunk:
                    return 0
                pending += chunk
                while b'\n' in pending:
                    line, pending = pending.split(b'\n', 1)
                    if not line.strip():
                        continue
                    cmd_id = None
                    try:
                        cmd_id = json.loads(line).get('id')
                        say(dict(handle(line, dirs), id=cmd_id, ok=True))
                    except (ValueError, AttributeError) as err:
                        say({'id': cmd_id, 'ok': False, 'error': str(err)})
                continue
            d = readers[fd]
            for _ in range(BURST):
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError as err:
                    # The device was deleted under us (a teardown): the wire is cut.
                    sys.stderr.write('userspace-wire: reading a TAP failed: %s\n' % err)
                    return 1
                d.arrive(frame, now)
        now = time.monotonic()
        for d in dirs.values():
            d.flush(now)


if __name__ == '__main__':
    sys.exit(main())
