// The Storage and Realtime stand-ins the gateway mounts at /storage/v1/ and /realtime/v1/websocket
// (local/storage/server.ts, local/realtime/server.ts). While one is not mounted here the gateway answers its
// paths 501 with a JSON error naming it.
import { createRealtimeServer } from "./realtime/server.ts";

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

export function startRealtime(options: ServiceOptions): MountedService | undefined {
  return createRealtimeServer({ dbUrl: options.dbUrl, jwtSecret: options.jwtSecret });
}
