// One error type for everything a wabase RPC can refuse, so the UI branches on `code` (the SQLSTATE: PT403
// forbidden, PT404 not found, P0409 conflict...) and `hint` (the machine-readable reason the SQL functions put
// there) instead of parsing messages.

/** The error object PostgREST (and supabase-js for network failures) answers. */
export interface PostgrestErrorLike {
  message: string;
  code?: string;
  details?: string | null;
  hint?: string | null;
}

/** A wabase RPC failed: the database refused it, PostgREST did, or the request never got an answer. */
export class WabaseRpcError extends Error {
  /** The SQLSTATE or PostgREST code (`PT403`, `PGRST202`...); empty when the request never got an answer. */
  readonly code: string;
  readonly details: string | null;
  /** The SQL functions' machine-readable reason (`forbidden`, `user_not_found`...), when there is one. */
  readonly hint: string | null;
  /** The RPC that failed. */
  readonly fn: string;
  /** The HTTP status, when known. */
  readonly status: number | undefined;

  constructor(fn: string, error: PostgrestErrorLike, status?: number) {
    super(`${fn}: ${error.message}`);
    this.name = "WabaseRpcError";
    this.fn = fn;
    this.code = error.code ?? "";
    this.details = error.details ?? null;
    this.hint = error.hint ?? null;
    this.status = status;
  }
}
