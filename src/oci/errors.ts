// The OCI error table (distribution-spec "Error Codes") and OciError, the one error type services throw.
export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  NAME_UNKNOWN: 404,
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_INVALID: 400,
  SIZE_INVALID: 400,
  PAGINATION_NUMBER_INVALID: 400,
  RANGE_INVALID: 416,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
} as const;

export type OciCode = keyof typeof ERROR_STATUS;

const MESSAGES: Record<OciCode, string> = {
  BLOB_UNKNOWN: 'blob unknown to registry',
  BLOB_UPLOAD_UNKNOWN: 'blob upload unknown to registry',
  MANIFEST_UNKNOWN: 'manifest unknown',
  NAME_UNKNOWN: 'repository name not known to registry',
  NAME_INVALID: 'invalid repository name',
  DIGEST_INVALID: 'provided digest did not match uploaded content',
  MANIFEST_INVALID: 'manifest invalid',
  SIZE_INVALID: 'provided length did not match content length',
  PAGINATION_NUMBER_INVALID: 'invalid number of results requested',
  RANGE_INVALID: 'invalid content range',
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  UNSUPPORTED: 'the operation is unsupported',
  TOOMANYREQUESTS: 'too many requests',
  UNAVAILABLE: 'service unavailable',
  UNKNOWN: 'unknown error',
};

/** The challenge stevedore answers 401 with, so clients (docker login, skopeo --creds, containerd) send credentials. */
export const BASIC_CHALLENGE: Readonly<Record<string, string>> = { 'www-authenticate': 'Basic realm="stevedore"' };

export class OciError extends Error {
  readonly status: number;
  constructor(
    readonly code: OciCode,
    readonly detail?: unknown,
    message?: string,
    /** Extra response headers, e.g. Retry-After on TOOMANYREQUESTS. */
    readonly headers: Record<string, string> = {},
    /**
     * Another status than the code's: 502/504 when the upstream, not the client or this server, is at fault; 400
     * for a request that never became one (UNSUPPORTED: not HTTP this server can route).
     */
    status?: 400 | 502 | 503 | 504,
  ) {
    super(message ?? MESSAGES[code]);
    this.name = 'OciError';
    this.status = status ?? ERROR_STATUS[code];
  }

  toBody(): { errors: { code: OciCode; message: string; detail: unknown }[] } {
    return { errors: [{ code: this.code, message: this.message, detail: this.detail ?? null }] };
  }
}
