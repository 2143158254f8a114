// The Storage and Realtime stand-ins the gateway mounts at /storage/v1/ and /realtime/v1/websocket. They are
// built beside this file (local/storage/server.ts, local/realtime/server.ts); while one is missing the gateway
// answers its paths 501 with a JSON error naming it.

export interface MountedService {
  handle(req: Request): Response | Promise<Response>;
  close(): Promise<void>;
}

export interface ServiceOptions {
  dbUrl: string;
  jwtSecret: string;
  /** Where Storage keeps object bytes. */
  storageRoot: string;
}

export function startStorage(_options: ServiceOptions): MountedService | undefined {
  return undefined;
}

export function startRealtime(_options: ServiceOptions): MountedService | undefined {
  return undefined;
}
