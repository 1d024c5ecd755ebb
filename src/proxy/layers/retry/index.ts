// Retries for one route and destination: the policy (what is retried, how often, after how long), the destination's
// retry budget, and the replay buffer that makes a request body sendable twice. Per attempt the caller does:
// verdict = policy.afterFailure(...) or policy.afterResponse(...); if 'retry' and budget.tryWithdraw() (and the
// breaker's tryAcquireRetry()), wait policy.backoffMs(...) and send again with replay.nextAttempt() as the body.
// Every original request calls budget.deposit() once.

export { attemptFailureOf, headerValue, RetryPolicy, type AttemptFailure, type RetryOn, type RetryOptions, type RetryVerdict } from './retry-policy.js';
export { RetryBudget, type RetryBudgetOptions } from './retry-budget.js';
export { ReplayBuffer } from './replay-buffer.js';
export { parseRetryAfter } from './retry-after.js';
