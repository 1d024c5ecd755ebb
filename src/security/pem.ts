// PEM helpers shared by the CA and the sidecar's identity: split a bundle or chain into its certificates.

/** The PEM certificates in a text, in order, each ending with a newline. */
export function splitPems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => `${p}\n`) ?? [];
}
