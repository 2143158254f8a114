import assert from "node:assert/strict";
import { findRedefinitions } from "./check-migrations.ts";

const fn = (name: string, args: string, body = "select 1") =>
  `create or replace function ${name}(${args})\nreturns int language sql as $$ ${body} $$;\n`;

Deno.test("check-migrations: a function created in two migrations is reported with both places", () => {
  const problems = findRedefinitions(
    new Map([
      ["20260101000000_a.sql", fn("wa.claim", "p_worker text, p_limit int default 1")],
      ["20260102000000_b.sql", "-- faster\n" + fn("wa.claim", "p_worker text, p_limit integer default 5")],
    ]),
  );
  assert.deepEqual(problems, [
    "20260102000000_b.sql:2: function wa.claim(text,integer) is already created at 20260101000000_a.sql:1",
  ]);
});

Deno.test("check-migrations: overloads, comments, strings and bodies are not definitions", () => {
  const problems = findRedefinitions(
    new Map([
      ["20260101000000_a.sql", fn("wa.f", "p_a text") + "-- create function wa.f(p_a text)\n"],
      [
        "20260102000000_b.sql",
        fn("wa.f", "p_a text, p_b integer") + fn("wa.g", "", "create function wa.f(p_a text)") +
        "comment on function wa.g() is 'create function wa.f(p_a text)';\n",
      ],
    ]),
  );
  assert.deepEqual(problems, []);
});

Deno.test("check-migrations: triggers and policies are keyed by their table", () => {
  const trigger = (table: string) =>
    `create trigger t after insert on ${table} for each row execute function f();\n`;
  const policy = (table: string) => `create policy "readers read" on ${table} for select using (true);\n`;
  assert.deepEqual(
    findRedefinitions(
      new Map([["20260101000000_a.sql", trigger("a") + trigger("b") + policy("a") + policy("b")]]),
    ),
    [],
  );
  assert.deepEqual(
    findRedefinitions(
      new Map([["20260101000000_a.sql", policy("a")], ["20260102000000_b.sql", policy("a")]]),
    ),
    ['20260102000000_b.sql:1: policy "readers read" on a is already created at 20260101000000_a.sql:1'],
  );
});

Deno.test("check-migrations: dropping or renaming another migration's object is reported", () => {
  const problems = findRedefinitions(
    new Map([
      ["20260101000000_a.sql", fn("wa.health", "") + fn("wa.take", "p_s text")],
      [
        "20260102000000_b.sql",
        "drop function wa.health();\nalter function wa.take(text) rename to spend;\n" +
        "drop view if exists wa.health_view;\n",
      ],
    ]),
  );
  assert.deepEqual(problems, [
    "20260102000000_b.sql:1: drops or renames function wa.health(), created at 20260101000000_a.sql:1",
    "20260102000000_b.sql:2: drops or renames function wa.take(text), created at 20260101000000_a.sql:3",
  ]);
});
