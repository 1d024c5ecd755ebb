// The topology page: the service graph laid out by d3-force in caller -> callee columns, each edge labelled with its
// rps, success rate and p99 and coloured by health, updating in place as the stats poll brings new numbers.

import { forceCollide, forceLink, forceManyBody, forceSimulation, forceX, forceY, type Simulation, type SimulationLinkDatum, type SimulationNodeDatum } from 'd3-force';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fmtMs, fmtPercent, fmtRps } from './format.js';
import { buildGraph, OUTSIDE, type GraphEdge, type GraphNode } from './graph-model.js';
import { serviceHref } from './hooks.js';
import type { MeshData } from './main.js';

interface SimNode extends SimulationNodeDatum {
  id: string;
  depth: number;
}
type SimLink = SimulationLinkDatum<SimNode> & { id: string };

const COLUMN = 260;
const RADIUS = 26;

function useSize(): [preact.RefObject<HTMLDivElement>, { w: number; h: number }] {
  const ref = useRef<HTMLDivElement>(null);
  const [size, setSize] = useState({ w: 900, h: 560 });
  useEffect(() => {
    const el = ref.current;
    if (el === null) return;
    const ro = new ResizeObserver(() => setSize({ w: Math.max(320, el.clientWidth), h: Math.max(380, el.clientHeight) }));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, size];
}

/** Positions that survive re-renders: the simulation moves these objects, the SVG reads them. */
function useLayout(nodes: GraphNode[], edges: GraphEdge[], size: { w: number; h: number }): Map<string, SimNode> {
  const positions = useRef(new Map<string, SimNode>());
  const sim = useRef<Simulation<SimNode, SimLink> | null>(null);
  const [, setTick] = useState(0);
  const shape = nodes.map((n) => `${n.id}@${n.depth}`).join(',') + '|' + edges.map((e) => e.id).join(',');
  const maxDepth = Math.max(0, ...nodes.map((n) => n.depth));
  useEffect(() => {
    const map = positions.current;
    const next = new Map<string, SimNode>();
    // Columns spread over the width (at most COLUMN * 1.3 apart), centred when the graph is narrower than the box.
    const margin = RADIUS * 4;
    const column = maxDepth === 0 ? 0 : Math.min(COLUMN * 1.3, (size.w - 2 * margin) / maxDepth);
    const left = maxDepth === 0 ? size.w / 2 : (size.w - maxDepth * column) / 2;
    for (const n of nodes) {
      const old = map.get(n.id);
      const node: SimNode = old ?? { id: n.id, depth: n.depth, x: left + n.depth * column, y: size.h / 2 + (Math.random() - 0.5) * 80 };
      node.depth = n.depth;
      next.set(n.id, node);
    }
    positions.current = next;
    const links: SimLink[] = edges.filter((e) => next.has(e.source) && next.has(e.target)).map((e) => ({ id: e.id, source: e.source, target: e.target }));
    sim.current?.stop();
    const s = forceSimulation<SimNode, SimLink>([...next.values()])
      .force('link', forceLink<SimNode, SimLink>(links).id((d) => d.id).distance(column * 0.9).strength(0.15))
      .force('charge', forceManyBody<SimNode>().strength(-900))
      .force('collide', forceCollide<SimNode>(RADIUS * 2.6))
      .force('x', forceX<SimNode>((d) => left + d.depth * column).strength(0.9))
      .force('y', forceY<SimNode>(size.h / 2).strength(0.08))
      .alpha(map.size === 0 ? 1 : 0.4)
      .on('tick', () => {
        // Keep every node (and its label) inside the drawing.
        for (const n of next.values()) {
          n.x = Math.min(size.w - RADIUS * 2.5, Math.max(RADIUS * 2.5, n.x ?? 0));
          n.y = Math.min(size.h - RADIUS * 2.2, Math.max(RADIUS * 1.5, n.y ?? 0));
        }
        setTick((t) => t + 1);
      });
    sim.current = s;
    return () => s.stop();
    // The layout restarts only when the graph's shape or the drawing's size changes, not on every number.
  }, [shape, size.w, size.h]);
  return positions.current;
}

function edgePath(s: SimNode, t: SimNode): { d: string; mx: number; my: number } {
  const sx = s.x ?? 0, sy = s.y ?? 0, tx = t.x ?? 0, ty = t.y ?? 0;
  const dx = tx - sx, dy = ty - sy;
  const len = Math.hypot(dx, dy) || 1;
  // A slight bend, so that a -> b and b -> a are two lines; ends stop at the circles' rims.
  const bend = Math.min(40, len * 0.12);
  const nx = -dy / len, ny = dx / len;
  const cx = (sx + tx) / 2 + nx * bend, cy = (sy + ty) / 2 + ny * bend;
  const start = toward(sx, sy, cx, cy, RADIUS + 3);
  const end = toward(tx, ty, cx, cy, RADIUS + 7);
  return { d: `M${start[0]},${start[1]} Q${cx},${cy} ${end[0]},${end[1]}`, mx: (sx + 2 * cx + tx) / 4, my: (sy + 2 * cy + ty) / 4 };
}

function toward(x: number, y: number, tx: number, ty: number, by: number): [number, number] {
  const d = Math.hypot(tx - x, ty - y) || 1;
  return [x + ((tx - x) / d) * by, y + ((ty - y) / d) * by];
}

function Edge({ e, s, t, dim }: { e: GraphEdge; s: SimNode; t: SimNode; dim: boolean }) {
  const { d, mx, my } = edgePath(s, t);
  const st = e.stats;
  const width = st === null || st.rps <= 0 ? 1.5 : Math.min(7, 1.8 + Math.log2(1 + st.rps));
  const label = st === null || st.rps <= 0 ? null : `${fmtRps(st.rps)} rps · ${fmtPercent(st.successRate)} · ${fmtMs(st.p99Ms)}`;
  return (
    <g class={`edge h-${e.health} ${st === null ? 'unmeasured' : ''} ${dim ? 'dim' : ''}`} data-edge={e.id}>
      <title>{st === null ? `${e.source} calls ${e.target} (no traffic measured yet)` : `${e.source} → ${e.target}: ${fmtRps(st.rps)} rps, ${fmtPercent(st.successRate)} success, p50 ${fmtMs(st.p50Ms)}, p95 ${fmtMs(st.p95Ms)}, p99 ${fmtMs(st.p99Ms)} (${st.requests} requests)`}</title>
      <path class="edge-line" d={d} stroke-width={width} marker-end={`url(#arrow-${e.health})`} />
      {label !== null && <path class="edge-flow" d={d} />}
      {label !== null && (
        <g class="edge-label" transform={`translate(${mx},${my})`}>
          <rect x={-label.length * 3.1 - 6} y={-10} width={label.length * 6.2 + 12} height={20} rx={10} />
          <text text-anchor="middle" dy="4">{label}</text>
        </g>
      )}
    </g>
  );
}

function Node({ n, p, dim, onHover }: { n: GraphNode; p: SimNode; dim: boolean; onHover: (id: string | null) => void }) {
  const st = n.stats;
  const circumference = 2 * Math.PI * (RADIUS + 4);
  const ok = st?.successRate ?? null;
  const sub = n.outside ? 'not in the mesh' : st !== null && st.rps > 0 ? `${fmtRps(st.rps)} rps · ${fmtPercent(st.successRate)}` : n.instances > 0 ? `${n.instances} instance${n.instances === 1 ? '' : 's'}` : 'no instances';
  const body = (
    <g
      class={`node h-${n.health} ${n.outside ? 'outside' : ''} ${dim ? 'dim' : ''}`}
      transform={`translate(${p.x ?? 0},${p.y ?? 0})`}
      data-node={n.id}
      onPointerEnter={() => onHover(n.id)}
      onPointerLeave={() => onHover(null)}
    >
      <title>{n.outside ? 'callers from outside the mesh, or destinations it does not know' : `${n.namespace}/${n.name}: ${sub}`}</title>
      <circle class="node-halo" r={RADIUS + 4} />
      {ok !== null && <circle class="node-ring-bad" r={RADIUS + 4} />}
      {ok !== null && <circle class="node-ring" r={RADIUS + 4} stroke-dasharray={`${circumference * ok} ${circumference}`} transform="rotate(-90)" />}
      <circle class="node-core" r={RADIUS} />
      <text class="node-initial" text-anchor="middle" dy="6">{n.outside ? '?' : n.name.slice(0, 2)}</text>
      <text class="node-name" text-anchor="middle" y={RADIUS + 20}>{n.outside ? 'unknown' : n.name}</text>
      <text class="node-sub" text-anchor="middle" y={RADIUS + 35}>{sub}</text>
    </g>
  );
  return n.outside ? body : <a href={serviceHref(n.namespace, n.name)} aria-label={`service ${n.name}`}>{body}</a>;
}

function Graph({ nodes, edges }: { nodes: GraphNode[]; edges: GraphEdge[] }) {
  const [ref, size] = useSize();
  const pos = useLayout(nodes, edges, size);
  // Hovering a service brings out its calls and its neighbours; the rest fades.
  const [hover, setHover] = useState<string | null>(null);
  const near = (id: string) => hover === null || id === hover || edges.some((e) => (e.source === hover && e.target === id) || (e.target === hover && e.source === id));
  return (
    <div class="graph" ref={ref}>
      <svg viewBox={`0 0 ${size.w} ${size.h}`} width={size.w} height={size.h} role="img" aria-label="service graph">
        <defs>
          {(['good', 'warn', 'bad', 'idle'] as const).map((h) => (
            <marker key={h} id={`arrow-${h}`} class={`arrow h-${h}`} viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
              <path d="M0,0 L10,5 L0,10 z" />
            </marker>
          ))}
        </defs>
        <g>
          {edges.map((e) => {
            const s = pos.get(e.source), t = pos.get(e.target);
            return s && t ? <Edge key={e.id} e={e} s={s} t={t} dim={hover !== null && e.source !== hover && e.target !== hover} /> : null;
          })}
        </g>
        <g>
          {nodes.map((n) => {
            const p = pos.get(n.id);
            return p ? <Node key={n.id} n={n} p={p} dim={!near(n.id)} onHover={setHover} /> : null;
          })}
        </g>
      </svg>
    </div>
  );
}

export function TopologyPage({ mesh }: { mesh: MeshData }) {
  const graph = useMemo(() => buildGraph(mesh), [mesh.stats, mesh.proxies, mesh.services]);
  const services = graph.nodes.filter((n) => !n.outside);
  const measured = graph.edges.filter((e) => e.stats !== null && e.stats.rps > 0);
  const quiet = mesh.stats !== null && mesh.stats.services.every((s) => s.rps === 0) && mesh.stats.edges.every((e) => e.rps === 0);

  if (!mesh.loaded) return <div class="empty">Connecting to the control plane…</div>;
  if (services.length === 0) {
    return (
      <div class="empty big">
        <h2>No services yet</h2>
        <p>For the demo shop with live traffic, start the local mesh with it (stop a plain <code>mycel up</code> first):</p>
        <pre class="cmd">npx mycel up --demo</pre>
        <p class="muted">Or put your own app in the mesh: <code>npx mycel run --service NAME --port PORT -- your command</code></p>
      </div>
    );
  }
  return (
    <div class="topology">
      <section class="graph-panel card">
        <div class="panel-head">
          <h2>Service graph</h2>
          <span class="muted">last {mesh.stats?.windowSeconds ?? 60} s · caller → callee · click a service</span>
        </div>
        {mesh.statsProblem !== null && <div class="banner">{mesh.statsProblem}</div>}
        {quiet && (
          <div class="banner">
            Waiting for traffic: the sidecars report their numbers every few seconds. Still nothing after a minute? <code>npx mycel up --demo</code> runs a load generator; or send requests through a sidecar.
          </div>
        )}
        <Graph nodes={graph.nodes} edges={graph.edges} />
        <div class="legend">
          <span>edges: rps · success · p99</span>
          <span><span class="dot h-good" />≥ 99% success</span>
          <span><span class="dot h-warn" />≥ 95%</span>
          <span><span class="dot h-bad" />below 95%</span>
          <span><span class="dot h-idle" />no traffic</span>
          <span><span class="dash" />called, not measured yet</span>
        </div>
      </section>
      <aside class="side">
        <section class="card">
          <h3>Services</h3>
          <table class="grid" data-testid="services-table">
            <thead>
              <tr><th>service</th><th class="num">rps</th><th class="num">success</th><th class="num">p99</th></tr>
            </thead>
            <tbody>
              {services.map((n) => (
                <tr key={n.id} data-service={n.name}>
                  <td><a href={serviceHref(n.namespace, n.name)}><span class={`dot h-${n.health}`} />{n.name}</a> <span class="muted small">×{n.instances}</span></td>
                  <td class="num">{n.stats ? fmtRps(n.stats.rps) : '–'}</td>
                  <td class={`num h-${n.health}`}>{fmtPercent(n.stats?.successRate)}</td>
                  <td class="num">{fmtMs(n.stats?.p99Ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
        <section class="card">
          <h3>Connections</h3>
          {measured.length === 0 ? (
            <p class="muted">No calls measured in the window yet{graph.edges.length > 0 ? '; the graph shows who subscribes to whom' : ''}.</p>
          ) : (
            <table class="grid" data-testid="edges-table">
              <thead>
                <tr><th>caller → callee</th><th class="num">rps</th><th class="num">success</th><th class="num">p99</th></tr>
              </thead>
              <tbody>
                {measured.map((e) => (
                  <tr key={e.id} data-edge={e.id}>
                    <td><span class={`dot h-${e.health}`} />{e.source === OUTSIDE ? 'outside' : e.source} → {e.target}</td>
                    <td class="num">{fmtRps(e.stats?.rps ?? 0)}</td>
                    <td class={`num h-${e.health}`}>{fmtPercent(e.stats?.successRate)}</td>
                    <td class="num">{fmtMs(e.stats?.p99Ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      </aside>
    </div>
  );
}
