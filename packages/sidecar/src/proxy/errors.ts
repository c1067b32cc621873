/**
 * Upstream failures by kind: connect failure (refused, unreachable, connect timeout), TLS (a
 * handshake or certificate problem, counted as a connect failure), timeout, and reset (the rest).
 * @module
 */
// OpenSSL's certificate verification results, as node reports them in err.code.
const CERT_ERRORS = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);

/** What went wrong with an upstream attempt (as `retry_on` and the counters name it). */
export type FailKind = 'connect-failure' | 'tls' | 'timeout' | 'reset';
/** Classifies an upstream error (the client's own faults are told apart by `isClientFault`). */
export function classify(err: unknown): FailKind {
  const code = (err as { code?: string })?.code;
  if (
    code !== undefined &&
    (CERT_ERRORS.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
  )
    return 'tls';
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ECONNREFUSED' ||
    code === 'ENOTFOUND' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENETUNREACH' ||
    code === 'EAI_AGAIN'
  )
    return 'connect-failure';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  return 'reset';
}
