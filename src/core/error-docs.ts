// Renders docs/errors.md from the error catalogue, so the documentation cannot drift from the code
// (`npm run docs` writes it; a test checks that the committed file is fresh).

import { ERROR_CATALOGUE } from './error-catalogue.js';

export function renderErrorDocs(): string {
  const lines = [
    '# Mycel error catalogue',
    '',
    '<!-- Generated from src/core/error-catalogue.ts by `npm run docs`; do not edit by hand. -->',
    '',
    'Every response the mesh makes itself carries `x-mycel-error: <code>`; the same code appears in the sidecar\'s log line for the request',
    '(`"error": "<code>"`) and in `mycel_mesh_errors_total{reason="<code>"}`. gRPC clients get the gRPC status below in a trailers-only',
    'response, with the code in `x-mycel-error` and the reason in `grpc-message`.',
    '',
    '| code | HTTP | gRPC | source | retryable | meaning | what to do |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    lines.push(`| \`${code}\` | ${spec.status} | ${spec.grpcStatus} | ${spec.source} | ${spec.retryable ? 'yes' : 'no'} | ${spec.summary} | ${spec.fix} |`);
  }
  return lines.join('\n') + '\n';
}
