// Restarts the bench cluster (pg_ctl restart -m fast, as the cluster's OS user, through local/lib.sh): every
// connection is cut and the server is down for a moment. A fast shutdown, not an immediate one: the throwaway
// cluster runs with synchronous_commit=off, where a crash may lose the last commits it already acknowledged,
// a loss the bench would then blame on wabase.
const libSh = new URL("../../local/lib.sh", import.meta.url).pathname;

export async function restartPostgres(pgData: string): Promise<void> {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      'source "$1" && as_db_owner "$PG_BIN/pg_ctl" -D "$2" -l "$2/server.log" -m fast -w -t 60 restart',
      "restart",
      libSh,
      pgData,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`pg_ctl restart failed: ${new TextDecoder().decode(out.stderr)}`);
}
