// The mesh CA of one control-plane replica: makes (or takes) the root on first start, issues workload leaves from
// CSRs through an intermediate under the active root, verifies a proxy's current chain for renewal, and performs the
// root rotation steps (add a root, switch issuance to it, remove the old one). Keys stay in this process and on its disk.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, verify as verifySignature } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import type { Logger } from '../../core/log.js';
import { signerOf, type CaMaterial } from '../../security/dev-ca.js';
import { splitPems } from '../../security/pem.js';
import { parseSpiffeId, parseSubjectAltNames, spiffeId } from '../../security/spiffe.js';
import type { Store } from '../store/store.js';
import { CaError, fingerprintOf, generateIntermediate, generateRoot, issueLeaf, issueTlsLeaf, readCsr } from './ca-certs.js';
import { bundleOf, readCaState, updateCaState, type CaState, type RootRecord } from './ca-state.js';
import { CaKeyFiles, intermediateFileName, rootFileName } from './key-files.js';

const DAY_MS = 86_400_000;
/** Intermediates live 90 days at most (never past their root); a replica replaces its own when under 7 days are left. */
const INTERMEDIATE_LIFETIME_SECONDS = 90 * 86_400;
const INTERMEDIATE_RENEW_MS = 7 * DAY_MS;

export interface MeshCaOptions {
  store: Store;
  stateDir: string;
  replica: string;
  log: Logger;
  /** `--ca-cert` / `--ca-key`: a root, or an intermediate followed by its chain up to the root. */
  supplied?: CaMaterial;
  /** Lifetime of a root made here (MeshConfig certificates.rootLifetime). */
  rootLifetimeSeconds: number;
}

export interface IssueSettings {
  trustDomain: string;
  lifetimeSeconds: number;
  backdateSeconds: number;
}

export interface IssuedCertificate {
  /** Leaf then intermediate, PEM. */
  certChain: string;
  /** Every current root, PEM. */
  trustBundle: string;
  notAfter: number;
  /** The root the chain leads to. */
  root: string;
  spiffeId: string;
}

export interface VerifiedChain {
  namespace: string;
  service: string;
  spiffeId: string;
  root: string;
  leaf: X509Certificate;
}

interface Supplied {
  material: CaMaterial;
  /** The root this material is or chains to. */
  root: string;
  rootPem: string;
  isRoot: boolean;
}

export class MeshCa {
  private readonly files: CaKeyFiles;
  private supplied: Supplied | undefined;
  /** The intermediate this replica issues with, per root; a promise so that concurrent requests make only one. */
  private readonly signers = new Map<string, Promise<{ material: CaMaterial; notAfter: number }>>();
  private readonly parsedRoots = new Map<string, X509Certificate>();

  private constructor(private readonly o: MeshCaOptions) {
    this.files = new CaKeyFiles(o.stateDir);
  }

  /** Loads the CA state, creating the first root (generated, or the supplied one) on the first start of the mesh. */
  static async open(o: MeshCaOptions): Promise<MeshCa> {
    const ca = new MeshCa(o);
    if (o.supplied !== undefined) ca.supplied = await readSupplied(o.supplied);
    await ca.ensureState();
    const state = ca.state();
    try {
      await ca.signerFor(state.active);
    } catch (err) {
      // Another replica may hold the key; this one serves the bundle and refuses issuance with the reason.
      o.log.warn('this replica cannot issue certificates', { reason: (err as Error).message });
    }
    return ca;
  }

  private async ensureState(): Promise<void> {
    const existing = readCaState(this.o.store)?.state;
    if (existing !== undefined) {
      if (this.supplied !== undefined && !existing.roots.some((r) => r.fingerprint === this.supplied!.root)) {
        throw new CaError(400, 'foreign-ca', `the CA given with --ca-cert chains to root ${this.supplied.root.slice(0, 16)}, which is not a root of this mesh (roots: ${existing.roots.map((r) => r.fingerprint.slice(0, 16)).join(', ')}); add it first or start without --ca-cert`);
      }
      return;
    }
    let root: RootRecord;
    if (this.supplied !== undefined) {
      root = { fingerprint: this.supplied.root, certPem: this.supplied.rootPem, notAfter: Date.parse(new X509Certificate(this.supplied.rootPem).validTo), addedAt: new Date().toISOString() };
    } else {
      const made = await generateRoot({ lifetimeSeconds: this.o.rootLifetimeSeconds });
      await this.files.write(rootFileName(made.fingerprint), made);
      root = { fingerprint: made.fingerprint, certPem: made.certPem, notAfter: made.notAfter.getTime(), addedAt: new Date().toISOString() };
      this.o.log.info('mesh CA root created', { root: made.fingerprint.slice(0, 16), notAfter: made.notAfter.toISOString(), keyDir: this.files.dir });
    }
    // Two replicas starting at once: the first commit wins and the other adopts its root.
    await updateCaState(this.o.store, (cur) => cur ?? { roots: [root], active: root.fingerprint, intermediates: [] });
  }

  state(): CaState {
    const s = readCaState(this.o.store)?.state;
    if (s === undefined) throw new CaError(503, 'ca-not-ready', 'the mesh CA has no state yet');
    return s;
  }

  bundle(): string {
    return bundleOf(this.state());
  }

  private rootCert(r: RootRecord): X509Certificate {
    let c = this.parsedRoots.get(r.fingerprint);
    if (c === undefined) this.parsedRoots.set(r.fingerprint, (c = new X509Certificate(r.certPem)));
    return c;
  }

  /** This replica's intermediate under `root`: its own from disk, a new one if it holds the root key, or the supplied one. */
  private signerFor(root: string): Promise<{ material: CaMaterial; notAfter: number }> {
    const cached = this.signers.get(root);
    if (cached !== undefined) {
      return cached.then((s) => {
        if (s.notAfter - Date.now() > INTERMEDIATE_RENEW_MS || !this.holdsRootKey(root)) return s;
        this.signers.delete(root);
        return this.signerFor(root);
      });
    }
    const made = this.loadOrMakeIntermediate(root);
    this.signers.set(root, made);
    made.catch(() => this.signers.delete(root));
    return made;
  }

  private holdsRootKey(root: string): boolean {
    return this.supplied?.isRoot === true && this.supplied.root === root ? true : this.rootKeys.has(root);
  }

  private readonly rootKeys = new Set<string>();

  private async loadOrMakeIntermediate(root: string): Promise<{ material: CaMaterial; notAfter: number }> {
    if (this.supplied !== undefined && !this.supplied.isRoot && this.supplied.root === root) {
      return { material: this.supplied.material, notAfter: (await signerOf(this.supplied.material)).notAfter.getTime() };
    }
    const rootMaterial = this.supplied?.isRoot === true && this.supplied.root === root ? this.supplied.material : await this.files.read(rootFileName(root));
    if (rootMaterial !== undefined) this.rootKeys.add(root);
    const own = await this.files.read(intermediateFileName(root));
    if (own !== undefined) {
      const notAfter = (await signerOf(own)).notAfter.getTime();
      if (notAfter - Date.now() > INTERMEDIATE_RENEW_MS || (rootMaterial === undefined && notAfter > Date.now())) return { material: own, notAfter };
    }
    if (rootMaterial === undefined) {
      throw new CaError(503, 'no-ca-key', `this replica (${this.o.replica}) holds no key for the active root ${root.slice(0, 16)}: give it --ca-cert/--ca-key (the root, or an intermediate under it), or send proxies to the replica that made the root`);
    }
    const inter = await generateIntermediate(rootMaterial, { lifetimeSeconds: INTERMEDIATE_LIFETIME_SECONDS });
    await this.files.write(intermediateFileName(root), inter);
    await updateCaState(this.o.store, (cur) => {
      const s = cur ?? this.state();
      const others = s.intermediates.filter((i) => !(i.root === root && i.replica === this.o.replica));
      return { ...s, intermediates: [...others, { fingerprint: inter.fingerprint, root, certPem: inter.certPem, notAfter: inter.notAfter.getTime(), replica: this.o.replica }] };
    });
    this.o.log.info('mesh CA intermediate created', { root: root.slice(0, 16), intermediate: inter.fingerprint.slice(0, 16), notAfter: inter.notAfter.toISOString() });
    return { material: inter, notAfter: inter.notAfter.getTime() };
  }

  /** Issues a leaf for the CSR's key with the identity given (never the CSR's names), from the active root's intermediate. */
  async issue(csrPem: string, who: { namespace: string; service: string }, s: IssueSettings): Promise<IssuedCertificate> {
    const csr = await readCsr(csrPem);
    const state = this.state();
    const signer = await this.signerFor(state.active);
    let id: string;
    try {
      id = spiffeId(s.trustDomain, who.namespace, who.service);
    } catch (err) {
      throw new CaError(400, 'bad-identity', (err as Error).message);
    }
    const leaf = await issueLeaf(signer.material, csr, { spiffeId: id, lifetimeSeconds: s.lifetimeSeconds, backdateSeconds: s.backdateSeconds });
    return { certChain: leaf.certPem + signer.material.certPem, trustBundle: bundleOf(state), notAfter: leaf.notAfter.getTime(), root: state.active, spiffeId: id };
  }

  /** The control plane's own TLS certificate from the active root's intermediate: key made here, chain leaf + intermediate. */
  async serverCertificate(o: { spiffeId: string; dnsNames: string[]; ips: string[]; lifetimeSeconds: number }): Promise<{ certChain: string; keyPem: string; notAfter: number }> {
    const signer = await this.signerFor(this.state().active);
    const leaf = await issueTlsLeaf(signer.material, { ...o, serverAuth: true });
    return { certChain: leaf.certPem + signer.material.certPem, keyPem: leaf.keyPem as string, notAfter: leaf.notAfter.getTime() };
  }

  /** An admin client certificate for the CSR's key (the key never leaves the admin's machine). */
  async clientCertificate(csrPem: string, spiffeId: string, lifetimeSeconds: number): Promise<{ certChain: string; notAfter: number }> {
    const csr = await readCsr(csrPem);
    const signer = await this.signerFor(this.state().active);
    const leaf = await issueTlsLeaf(signer.material, { spiffeId, serverAuth: false, lifetimeSeconds }, await csr.publicKey.export());
    return { certChain: leaf.certPem + signer.material.certPem, notAfter: leaf.notAfter.getTime() };
  }

  /**
   * Checks a chain a proxy presents (leaf then intermediate): it leads to a current root, is valid now, and names one
   * mesh identity. Throws CaError 401 with the reason otherwise.
   */
  verifyChain(chainPem: string, now = Date.now()): VerifiedChain {
    const { leaf, root, uri } = this.verifyChainOnly(chainPem, now);
    const parsed = uri === undefined ? undefined : parseSpiffeId(uri);
    if (uri === undefined || parsed === undefined) throw new CaError(401, 'bad-certificate', 'the leaf carries no mesh SPIFFE ID');
    return { namespace: parsed.namespace, service: parsed.service, spiffeId: uri, root, leaf };
  }

  /** The chain leads to a current root and is valid now; its leaf's one URI SAN (a workload's, or the admin's). */
  verifyChainOnly(chainPem: string, now = Date.now()): { leaf: X509Certificate; root: string; uri: string | undefined } {
    const pems = splitPems(chainPem);
    const refuse = (why: string) => new CaError(401, 'bad-certificate', why);
    if (pems.length < 2) throw refuse('the certificate chain must hold the leaf and its intermediate');
    let leaf: X509Certificate;
    let inter: X509Certificate;
    try {
      leaf = new X509Certificate(pems[0] as string);
      inter = new X509Certificate(pems[1] as string);
    } catch (err) {
      throw refuse(`the certificate chain is not PEM X.509 (${(err as Error).message})`);
    }
    const state = this.state();
    const root = state.roots.find((r) => {
      const rc = this.rootCert(r);
      return inter.checkIssued(rc) && inter.verify(rc.publicKey);
    });
    if (root === undefined) throw refuse('the certificate does not chain to a current root of the mesh (was the root removed?); get a new join token');
    if (!inter.ca || !leaf.checkIssued(inter) || !leaf.verify(inter.publicKey)) throw refuse('the leaf is not signed by the intermediate that follows it');
    for (const [what, c] of [['leaf', leaf], ['intermediate', inter]] as const) {
      if (Date.parse(c.validFrom) > now || Date.parse(c.validTo) <= now) throw refuse(`the ${what} certificate is not valid now (valid ${c.validFrom} to ${c.validTo})`);
    }
    return { leaf, root: root.fingerprint, uri: uriOf(leaf) };
  }

  /** Checks that `signature` (base64, ECDSA over SHA-256, DER) over `data` was made by the leaf's key. */
  static proves(leaf: X509Certificate, data: Buffer, signature: string): boolean {
    try {
      return verifySignature('sha256', data, leaf.publicKey, Buffer.from(signature, 'base64'));
    } catch {
      return false;
    }
  }

  // ---- rotation ----------------------------------------------------------------------------------------------------

  /** Step 1: a new root (key on this replica's disk) joins the trust bundle; issuance stays with the active root. */
  async addRoot(lifetimeSeconds = this.o.rootLifetimeSeconds): Promise<RootRecord> {
    const made = await generateRoot({ lifetimeSeconds });
    await this.files.write(rootFileName(made.fingerprint), made);
    const rec: RootRecord = { fingerprint: made.fingerprint, certPem: made.certPem, notAfter: made.notAfter.getTime(), addedAt: new Date().toISOString() };
    await updateCaState(this.o.store, (cur) => {
      const s = cur ?? this.state();
      return { ...s, roots: [...s.roots, rec] };
    });
    this.o.log.info('mesh CA root added to the trust bundle', { root: made.fingerprint.slice(0, 16), notAfter: made.notAfter.toISOString() });
    return rec;
  }

  /** Step 2: new leaves come from an intermediate under `root` (this replica must be able to make one). */
  async activate(root: string): Promise<CaState> {
    const fp = this.resolveRoot(root);
    await this.signerFor(fp);
    const next = await updateCaState(this.o.store, (cur) => ({ ...(cur ?? this.state()), active: fp }));
    this.o.log.info('mesh CA issues from a new root', { root: fp.slice(0, 16) });
    return next;
  }

  /** Step 3: the old root leaves the bundle (the caller has checked that no live leaf depends on it). */
  async removeRoot(root: string): Promise<CaState> {
    const fp = this.resolveRoot(root);
    const next = await updateCaState(this.o.store, (cur) => {
      const s = cur ?? this.state();
      if (s.active === fp) throw new CaError(409, 'root-active', `root ${fp.slice(0, 16)} still issues certificates; activate another root first`);
      return { ...s, roots: s.roots.filter((r) => r.fingerprint !== fp), intermediates: s.intermediates.filter((i) => i.root !== fp) };
    });
    this.signers.delete(fp);
    this.parsedRoots.delete(fp);
    this.rootKeys.delete(fp);
    for (const name of [rootFileName(fp), intermediateFileName(fp)]) {
      for (const ext of ['key', 'crt']) await unlink(`${this.files.dir}/${name}.${ext}`).catch(() => {});
    }
    this.o.log.info('mesh CA root removed from the trust bundle', { root: fp.slice(0, 16) });
    return next;
  }

  /** A root named by its full fingerprint or a unique prefix (at least 8 hex digits, as the CLI shows 16). */
  resolveRoot(text: string): string {
    const t = text.toLowerCase().replace(/:/g, '');
    const matches = this.state().roots.filter((r) => t.length >= 8 && r.fingerprint.startsWith(t));
    if (matches.length !== 1) throw new CaError(404, 'unknown-root', `no single root matches "${text}"; roots: ${this.state().roots.map((r) => r.fingerprint.slice(0, 16)).join(', ')}`);
    return (matches[0] as RootRecord).fingerprint;
  }
}

/** The leaf's only URI SAN (a SPIFFE ID of any shape), or undefined when it has none or several. */
function uriOf(leaf: X509Certificate): string | undefined {
  const uris = (parseSubjectAltNames(leaf.subjectAltName ?? '') ?? []).filter((n) => n.type === 'URI');
  return uris.length === 1 ? uris[0]?.value : undefined;
}

/** What `--ca-cert/--ca-key` hold: a self-signed root, or an intermediate followed by its chain (the root last). */
async function readSupplied(m: CaMaterial): Promise<Supplied> {
  const pems = splitPems(m.certPem);
  if (pems.length === 0) throw new CaError(400, 'bad-ca', 'the --ca-cert file holds no PEM certificate');
  const first = pems[0] as string;
  const material: CaMaterial = { certPem: first, keyPem: m.keyPem };
  try {
    await signerOf(material);
  } catch (err) {
    throw new CaError(400, 'bad-ca', `--ca-cert/--ca-key: ${(err as Error).message}`);
  }
  const cert = new X509Certificate(first);
  if (cert.checkIssued(cert) && cert.verify(cert.publicKey)) {
    // The replica puts an intermediate under a supplied root: a root limited to path length 0 cannot have one.
    if (new x509.X509Certificate(first).getExtension(x509.BasicConstraintsExtension)?.pathLength === 0) {
      throw new CaError(400, 'bad-ca', 'the --ca-cert root has path length 0, so it cannot sign an intermediate (a `mycel dev-certs` CA is such a root); supply a root with path length 1 or more, or an intermediate with its root');
    }
    return { material, root: fingerprintOf(first), rootPem: first, isRoot: true };
  }
  const rootPem = pems[pems.length - 1] as string;
  const root = new X509Certificate(rootPem);
  if (pems.length < 2 || !(root.checkIssued(root) && root.verify(root.publicKey))) {
    throw new CaError(400, 'bad-ca', 'the --ca-cert file holds an intermediate without its root: append the chain up to the self-signed root');
  }
  for (let i = 0; i + 1 < pems.length; i++) {
    const child = new X509Certificate(pems[i] as string);
    const parent = new X509Certificate(pems[i + 1] as string);
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) throw new CaError(400, 'bad-ca', `certificate ${i + 1} in --ca-cert is not signed by the one after it`);
  }
  // Leaves carry only their issuer; a chain longer than intermediate + root would need the middle ones sent too.
  if (pems.length > 2) throw new CaError(400, 'bad-ca', 'only an intermediate directly under the root is supported (two certificates in --ca-cert)');
  return { material: { certPem: first, keyPem: m.keyPem }, root: fingerprintOf(rootPem), rootPem, isRoot: false };
}
