// Instruments on the bench cluster (schema `bench`, dropped afterwards): triggers that write down, in the same
// transaction and on the database clock, what the processor's SQL functions did, so a benchmark can measure
// and account for it exactly without touching the processor.
//  - bench.claims: every claim of a buffer, with the buffer's due time then (debounce delay = claimed_at - due_at).
//  - bench.removed: every message reference that left a buffer, with the claim (fence) it left under: by
//    wa.complete_buffer (a completed batch) or wa.dead_letter_batch (its fence is in wa.dead_letters).
import type postgres from "postgres";

export async function installAudit(sql: postgres.Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`drop schema if exists bench cascade`;
    await tx`create schema bench`;
    await tx`create table bench.claims (conversation_id uuid, fence bigint, due_at timestamptz, claimed_at timestamptz)`;
    await tx`create table bench.removed (message_id uuid, conversation_id uuid, seq bigint, fence bigint)`;
    await tx`
      create function bench.log_claims() returns trigger language plpgsql as $$
      begin
        insert into bench.claims
        select n.conversation_id, n.fence, o.due_at, clock_timestamp()
        from new_rows n join old_rows o on o.conversation_id = n.conversation_id
        where n.fence is not null and n.fence is distinct from o.fence;
        return null;
      end $$`;
    await tx`
      create function bench.log_removed() returns trigger language plpgsql as $$
      begin
        insert into bench.removed select g.message_id, g.conversation_id, g.seq, g.fence from gone g;
        return null;
      end $$`;
    await tx`
      create trigger bench_claims after update on wa.buffers referencing old table as old_rows
        new table as new_rows for each statement execute function bench.log_claims()`;
    await tx`
      create trigger bench_removed after delete on wa.buffer_messages referencing old table as gone
        for each statement execute function bench.log_removed()`;
  });
}

export async function removeAudit(sql: postgres.Sql): Promise<void> {
  await sql`drop schema if exists bench cascade`;
}
