// The mesh CA's API: certificate issuance for proxies (join token, or proof by the current certificate's key), and the
// admin's view and rotation steps (add a root, issue from it, remove the old one), each refused with a reason when unsafe.

import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { adminSpiffeId } from '../../api/v1alpha1/cert-auth.js';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { spendToken, tokenSpent, type Principal } from '../auth/tokens.js';
import { CaError, readCsr } from '../ca/ca-certs.js';
import { MeshCa, type IssueSettings } from '../ca/mesh-ca.js';
import { dependingOn, listSome, notTrusting, type ProxyCertReport } from '../ca/rotation-checks.js';
import { proxiesOfOthers, REPLICA_KIND, type ReplicaRecord } from '../replicas.js';
import { json, problem, readJson, type ApiDeps } from './server.js';

type Req = Http2ServerRequest;
type Res = Http2ServerResponse;

export const CERTIFICATES_PATH = '/api/v1/certificates';

interface MeshCertSpec {
  trustDomain?: string;
  certificates?: { workloadLifetime?: string; renewAt?: number; backdate?: string };
}

/** Trust domain, leaf lifetime, backdate and renewal point from the MeshConfig (defaults when there is none). */
export function issueSettings(deps: ApiDeps): IssueSettings & { renewAt: number } {
  const spec = ((deps.index.meshConfig()?.value as { spec?: MeshCertSpec } | undefined)?.spec ?? {}) as MeshCertSpec;
  const c = spec.certificates ?? {};
  const seconds = (text: string | undefined, fallback: number) => {
    const ms = text === undefined ? undefined : parseDuration(text);
    return ms === undefined ? fallback : Math.max(0, Math.ceil(ms / 1000));
  };
  return {
    trustDomain: spec.trustDomain ?? 'mycel.local',
    lifetimeSeconds: Math.max(1, seconds(c.workloadLifetime, 86_400)),
    backdateSeconds: seconds(c.backdate, 300),
    renewAt: c.renewAt ?? 0.5,
  };
}

/** The mesh's trust domain (MeshConfig spec.trustDomain, mycel.local by default). */
export function trustDomainOf(deps: Pick<ApiDeps, 'index'>): string {
  return ((deps.index.meshConfig()?.value as { spec?: MeshCertSpec } | undefined)?.spec?.trustDomain) ?? 'mycel.local';
}

function caOf(deps: ApiDeps, res: Res): MeshCa | undefined {
  const ca = deps.ca();
  if (ca === undefined) problem(res, 503, 'ca-not-ready', 'the mesh CA is not loaded yet; try again in a moment');
  return ca;
}

function caFailure(res: Res, err: unknown, deps: ApiDeps): void {
  if (err instanceof CaError) return problem(res, err.status, err.code, err.message);
  deps.log.error('CA request failed', { reason: (err as Error).message });
  problem(res, 500, 'internal', (err as Error).message);
}

/**
 * POST /api/v1/certificates {csr, certChain?, proof?}: the first certificate with `Authorization: Bearer <join token>`,
 * a renewal with the current chain and a base64 signature over the CSR's DER by the current key.
 */
export async function issueCertificate(req: Req, res: Res, deps: ApiDeps): Promise<void> {
  if (req.method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST {"csr": PEM} with a join token, or {"csr", "certChain", "proof"} to renew');
  const ca = caOf(deps, res);
  if (ca === undefined) return;
  let body: { csr?: unknown; certChain?: unknown; proof?: unknown };
  try {
    body = (await readJson(req)) as typeof body;
  } catch (err) {
    return problem(res, 400, 'bad-request', `the body is not JSON: ${(err as Error).message}`);
  }
  if (typeof body.csr !== 'string') return problem(res, 400, 'bad-request', 'expected {"csr": "-----BEGIN CERTIFICATE REQUEST-----..."}');
  try {
    const csr = await readCsr(body.csr);
    let who: { namespace: string; service: string };
    let spend: string | undefined;
    let spendUntil: number | undefined;
    if (body.certChain !== undefined) {
      if (typeof body.certChain !== 'string' || typeof body.proof !== 'string') return problem(res, 400, 'bad-request', 'a renewal needs certChain (PEM) and proof (base64 signature over the CSR\'s DER by the current key)');
      const chain = ca.verifyChain(body.certChain);
      if (!MeshCa.proves(chain.leaf, Buffer.from(csr.rawData), body.proof)) return problem(res, 401, 'bad-proof', 'the proof is not a signature over this CSR by the key of the certificate presented');
      who = chain;
    } else {
      const p = tokenPrincipal(req, deps);
      if ('reason' in p) return problem(res, 401, 'unauthorized', `join token refused: ${p.reason}`, { reason: p.reason });
      if (p.role !== 'proxy') return problem(res, 403, 'forbidden', 'certificates are issued to proxies: use a join token (mycel token create --service NAME); the admin token has no workload identity');
      if (p.singleUseId !== undefined && tokenSpent(deps.store, p.singleUseId)) return problem(res, 401, 'unauthorized', 'join token refused: this single-use token was used already; create a new one', { reason: 'used' });
      who = p;
      spend = p.singleUseId;
      spendUntil = p.expiresAt;
    }
    const settings = issueSettings(deps);
    // The CSR was checked above, so a spent token always buys a certificate unless the CA itself fails.
    if (spend !== undefined && !(await spendToken(deps.store, spend, spendUntil))) return problem(res, 401, 'unauthorized', 'join token refused: this single-use token was used already; create a new one', { reason: 'used' });
    const issued = await ca.issue(body.csr, who, settings);
    deps.log.info('certificate issued', { identity: issued.spiffeId, notAfter: new Date(issued.notAfter).toISOString(), via: body.certChain !== undefined ? 'renewal' : 'token', root: issued.root.slice(0, 16) });
    return json(res, 200, { certChain: issued.certChain, trustBundle: issued.trustBundle, notAfter: issued.notAfter, spiffeId: issued.spiffeId, root: issued.root, activeRoot: ca.state().active, renewAt: settings.renewAt });
  } catch (err) {
    return caFailure(res, err, deps);
  }
}

function tokenPrincipal(req: Req, deps: ApiDeps): Principal | { reason: string } {
  const h = req.headers.authorization;
  if (typeof h !== 'string' || !h.startsWith('Bearer ')) return { reason: 'missing Authorization: Bearer <join token>' };
  const tokens = deps.tokens();
  if (tokens === undefined) return { reason: 'the control plane is still starting' };
  return tokens.check(h.slice(7).trim());
}

/** Every proxy of the mesh (this replica's and the others'), as reported for the rotation checks. */
async function allProxies(deps: ApiDeps): Promise<{ proxies: ProxyCertReport[]; unreachable: number }> {
  const others = await proxiesOfOthers(deps.store, deps.replica, deps.tokens()!.adminToken(), deps.fetchOther);
  return { proxies: [...deps.push.status(), ...(others.items as ProxyCertReport[])], unreachable: others.unreachable.length };
}

/** Admin routes under /api/v1/ca: GET (status), POST roots (add), POST activate {root}, DELETE roots/FP. */
export async function caRoutes(req: Req, res: Res, deps: ApiDeps, rest: string[]): Promise<void> {
  const ca = caOf(deps, res);
  if (ca === undefined) return;
  const [what, arg] = rest;
  try {
    if (what === undefined) {
      if (req.method !== 'GET') return problem(res, 405, 'method-not-allowed', 'GET');
      const s = ca.state();
      const { proxies } = await allProxies(deps);
      return json(res, 200, {
        activeRoot: s.active,
        roots: s.roots.map((r) => ({ fingerprint: r.fingerprint, notAfter: r.notAfter, addedAt: r.addedAt, active: r.fingerprint === s.active, proxiesTrusting: proxies.filter((p) => p.trustedRoots?.includes(r.fingerprint)).length, leavesUnder: dependingOn(r.fingerprint, proxies).length })),
        intermediates: s.intermediates.map((i) => ({ fingerprint: i.fingerprint, root: i.root, notAfter: i.notAfter, replica: i.replica })),
        trustBundle: ca.bundle(),
        workload: issueSettings(deps),
        apiCertificates: deps.store.list(REPLICA_KIND).flatMap((o) => {
          const r = o.value as ReplicaRecord;
          return r.apiCertificate === undefined ? [] : [{ replica: r.replica, url: r.url, ...r.apiCertificate }];
        }),
      });
    }
    if (what === 'admin-certificates' && arg === undefined) {
      if (req.method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST {"csr": PEM, "ttlSeconds"?: N}');
      const body = (await readJson(req).catch(() => ({}))) as { csr?: unknown; ttlSeconds?: unknown };
      const ttl = body.ttlSeconds ?? 86_400;
      if (typeof body.csr !== 'string') return problem(res, 400, 'bad-request', 'expected {"csr": "-----BEGIN CERTIFICATE REQUEST-----..."}');
      if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 60 || ttl > 30 * 86_400) return problem(res, 400, 'bad-request', 'ttlSeconds must be a whole number from 60 to 2592000 (30 days)');
      const spiffeId = adminSpiffeId(trustDomainOf(deps));
      const issued = await ca.clientCertificate(body.csr, spiffeId, ttl);
      deps.log.info('admin client certificate issued', { identity: spiffeId, notAfter: new Date(issued.notAfter).toISOString() });
      return json(res, 200, { certChain: issued.certChain, trustBundle: ca.bundle(), spiffeId, notAfter: issued.notAfter });
    }
    if (what === 'roots' && arg === undefined) {
      if (req.method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST to add a root');
      const rec = await ca.addRoot();
      return json(res, 200, { added: { fingerprint: rec.fingerprint, notAfter: rec.notAfter }, next: `when every proxy trusts it: mycel ca activate ${rec.fingerprint.slice(0, 16)}` });
    }
    if (what === 'activate' && arg === undefined) {
      if (req.method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST {"root": FINGERPRINT}');
      const body = (await readJson(req).catch(() => ({}))) as { root?: unknown; force?: unknown };
      if (typeof body.root !== 'string') return problem(res, 400, 'bad-request', 'expected {"root": FINGERPRINT}');
      const fp = ca.resolveRoot(body.root);
      const { proxies, unreachable } = await allProxies(deps);
      const behind = notTrusting(fp, proxies);
      if (body.force !== true && (behind.length > 0 || unreachable > 0)) {
        const why = behind.length > 0 ? `${behind.length} proxies do not trust root ${fp.slice(0, 16)} yet: ${listSome(behind)}` : `${unreachable} replicas did not answer, so their proxies are unknown`;
        return problem(res, 409, 'proxies-not-ready', `${why}; their leaves would be refused by peers. Wait and retry (the bundle is pushed to every connected proxy), or pass force`, { waitingFor: behind });
      }
      // The store change reaches every replica's watch, which pushes the new trust message to its proxies.
      const s = await ca.activate(fp);
      return json(res, 200, { activeRoot: s.active, next: 'proxies renew their certificates from the new root now; then remove the old root (mycel ca remove-root)' });
    }
    if (what === 'roots' && arg !== undefined) {
      if (req.method !== 'DELETE') return problem(res, 405, 'method-not-allowed', 'DELETE /api/v1/ca/roots/FINGERPRINT');
      const fp = ca.resolveRoot(arg);
      const s = ca.state();
      if (s.active === fp) return problem(res, 409, 'root-active', `root ${fp.slice(0, 16)} still issues certificates; activate another root first`);
      if (s.roots.length === 1) return problem(res, 409, 'last-root', 'the bundle would be empty; add and activate another root first');
      const { proxies, unreachable } = await allProxies(deps);
      const depending = dependingOn(fp, proxies);
      if (depending.length > 0 || unreachable > 0) {
        const why = depending.length > 0 ? `${depending.length} proxies still hold a certificate from root ${fp.slice(0, 16)}: ${listSome(depending)}` : `${unreachable} replicas did not answer, so their proxies are unknown`;
        return problem(res, 409, 'root-in-use', `${why}; wait for them to renew (they do so as soon as another root is active), then retry`, { waitingFor: depending });
      }
      const next = await ca.removeRoot(fp);
      return json(res, 200, { removed: fp, roots: next.roots.map((r) => r.fingerprint) });
    }
    return problem(res, 404, 'not-found', 'expected /api/v1/ca, /api/v1/ca/roots, /api/v1/ca/activate, /api/v1/ca/roots/FINGERPRINT or /api/v1/ca/admin-certificates');
  } catch (err) {
    return caFailure(res, err, deps);
  }
}
