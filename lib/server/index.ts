/** The OpenAI-compatible HTTP server (docs/server.md). */
export { MixattnServer, startServer } from './server.js';
export { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUE, DEFAULT_SHUTDOWN_GRACE_MS, type ServerOptions, type ResolvedServerOptions } from './options.js';
export { ApiError, type ErrorBody } from './errors.js';
