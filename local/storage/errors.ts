// Errors as the Storage API renders them, which storage-js parses (source: supabase/storage
// src/internal/errors/codes.ts, storage-error.ts and src/http/error-handler.ts): the body is
// `{ statusCode: "<status>", code, error, message }` and, as on hosted Storage, the HTTP status is 400 for
// every error below 500 — the intended status travels in `statusCode`. This is Storage's contract, not
// wabase's own `{ error: { code, message } }` shape: storage-js reads `message`, `statusCode` and `code`.

export class StorageError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly error: string = code,
    readonly httpStatus: number = statusCode >= 500 ? statusCode : 400,
  ) {
    super(message);
    this.name = "StorageError";
  }

  response(): Response {
    return Response.json(
      { statusCode: String(this.statusCode), code: this.code, error: this.error, message: this.message },
      { status: this.httpStatus },
    );
  }
}

export const errors = {
  noSuchBucket: () => new StorageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found"),
  noSuchKey: () => new StorageError(404, "NoSuchKey", "Object not found", "not_found"),
  accessDenied: (message: string) => new StorageError(403, "AccessDenied", message, "Unauthorized"),
  keyExists: () => new StorageError(409, "KeyAlreadyExists", "The resource already exists", "Duplicate"),
  bucketExists: () =>
    new StorageError(409, "BucketAlreadyExists", "The resource already exists", "Duplicate"),
  bucketNotEmpty: () =>
    new StorageError(409, "ResourceNotEmpty", "The bucket you tried to delete is not empty"),
  invalidKey: (key: string) => new StorageError(400, "InvalidKey", `Invalid key: ${key}`),
  invalidBucketName: () => new StorageError(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input"),
  invalidRequest: (message: string) => new StorageError(400, "InvalidRequest", message),
  invalidJwt: (message: string) => new StorageError(400, "InvalidJWT", message),
  invalidSignature: (message = "Invalid signature") => new StorageError(400, "InvalidSignature", message),
  expiredSignature: () => new StorageError(400, "ExpiredToken", "The provided token has expired."),
  entityTooLarge: () =>
    new StorageError(
      413,
      "EntityTooLarge",
      "The object exceeded the maximum allowed size",
      "Payload too large",
    ),
  invalidMimeType: (mimeType: string) =>
    new StorageError(415, "InvalidMimeType", `mime type ${mimeType} is not supported`, "invalid_mime_type"),
  notSupported: (what: string) =>
    new StorageError(501, "NotSupported", `${what} is not supported by the local Storage stand-in`),
  routeNotFound: (method: string, path: string) =>
    new StorageError(404, "NotFound", `Route ${method}:${path} not found`, "Not Found", 404),
  database: (message: string) => new StorageError(500, "DatabaseError", message),
};

/** A Postgres error met while acting for the caller, as Storage maps it (src/storage/database/errors.ts). */
export function fromDatabase(error: unknown, onDuplicate: () => StorageError): StorageError {
  const { code, message } = error as { code?: string; message?: string };
  if (code === "42501") {
    return errors.accessDenied(
      message?.includes("row-level security") ? "new row violates row-level security policy" : message ?? "",
    );
  }
  if (code === "23505") return onDuplicate();
  return errors.database(code === undefined ? String(message ?? error) : `database error, code: ${code}`);
}
