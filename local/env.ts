// Local defaults for the functions' environment: supabase/.env.local fills whatever the real
// environment leaves unset, so `FOO=bar npm start` overrides a default without editing the file.
import { parse } from "dotenv";

const envFile = new URL("../supabase/.env.local", import.meta.url);

/** The defaults in supabase/.env.local. */
export async function localEnvDefaults(): Promise<Record<string, string>> {
  return parse(await Deno.readTextFile(envFile));
}

/** Copies each default into Deno.env unless the real environment already sets it. */
export async function loadLocalEnv(): Promise<void> {
  for (const [key, value] of Object.entries(await localEnvDefaults())) {
    if (Deno.env.get(key) === undefined) Deno.env.set(key, value);
  }
}
