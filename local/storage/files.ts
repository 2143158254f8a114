// Object bytes on disk for the Storage stand-in: one file per uploaded version, named by the version's uuid,
// directly under the root (the stack uses .local/storage). Object names never become paths, so no name can
// reach outside the root; which name points at which version is storage.objects' business.
import { createHash } from "node:crypto";
import { errors } from "./errors.ts";

const VERSION = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Written {
  size: number;
  /** Quoted MD5 of the bytes, as S3 (Storage's usual backend) reports a single-part upload. */
  eTag: string;
}

export class Files {
  constructor(readonly root: string) {}

  /** The version's file, or undefined for a version this store cannot have written. */
  path(version: string | null): string | undefined {
    return version !== null && VERSION.test(version) ? `${this.root}/${version}` : undefined;
  }

  /** Streams `body` into the version's file; over `limit` bytes the file is removed and EntityTooLarge thrown. */
  async write(version: string, body: ReadableStream<Uint8Array>, limit: number): Promise<Written> {
    const path = this.path(version)!;
    await Deno.mkdir(this.root, { recursive: true });
    const file = await Deno.open(path, { write: true, createNew: true });
    const hash = createHash("md5");
    let size = 0;
    try {
      for await (const chunk of body) {
        size += chunk.length;
        if (size > limit) throw errors.entityTooLarge();
        hash.update(chunk);
        let offset = 0;
        while (offset < chunk.length) offset += await file.write(chunk.subarray(offset));
      }
    } catch (error) {
      file.close();
      await this.remove([version]);
      throw error;
    }
    file.close();
    return { size, eTag: `"${hash.digest("hex")}"` };
  }

  /** The version's bytes, or undefined when they are not on disk. */
  async open(version: string | null): Promise<Deno.FsFile | undefined> {
    const path = this.path(version);
    if (path === undefined) return undefined;
    try {
      return await Deno.open(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  /** Removes the versions' files; already gone is fine. */
  async remove(versions: (string | null)[]): Promise<void> {
    for (const version of versions) {
      const path = this.path(version);
      if (path === undefined) continue;
      await Deno.remove(path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }
}
