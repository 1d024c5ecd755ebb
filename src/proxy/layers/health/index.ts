// Endpoint health for one destination: active checks, passive outlier ejection, and the view that combines them.
// Wiring: build a HealthyEndpoints over an ActiveHealthChecker (optional, start() it) and an OutlierDetector; on every
// endpoint change call view.update(endpoints); per request `view.refresh()` and feed view.endpoints to the balancer
// when the version changed; after each response `outliers.report(endpoint.key, status or NO_RESPONSE)`.

export { ActiveHealthChecker, plainConnect, type ActiveHealthHooks, type ActiveHealthOptions, type CheckedEndpoint, type EndpointHealth, type HealthConnect, type HealthProtocol } from './active-checker.js';
export { NO_RESPONSE, OutlierDetector, type OutlierOptions } from './outlier-detector.js';
export { HealthyEndpoints, type EjectionSource, type HealthSource, type HealthyEndpointsOptions, type RoutingMode, type ViewEndpoint } from './healthy-endpoints.js';
export { decodeHealthCheckResponse, encodeHealthCheckRequest } from './grpc-health-codec.js';
export type { ProbeResult, StatusRange } from './probes.js';
