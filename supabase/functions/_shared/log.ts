// Structured logs: one JSON object per line, so the platform's log explorer can filter on any field.

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Writes one JSON log line with a timestamp and level. */
export function log(level: LogLevel, fields: Record<string, unknown>): void {
  const line = JSON.stringify({ ts: new Date().toISOString(), level, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

/** The message of an unknown thrown value, for logs. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
