// `npm test` step: every function, procedure, trigger, view and policy is created exactly once across
// supabase/migrations, and no migration drops or renames what another one created. Until the first release
// tag a change to an object edits its capability migration (docs/architecture.md), so a second definition is
// always a mistake: the file a reader opens would not be the code that runs.

const CREATE =
  /\bcreate\s+(?:or\s+replace\s+)?(function|procedure|trigger|view|materialized\s+view|policy)\s+("[^"]+"|[\w.]+)/gi;
const DROP_OR_RENAME =
  /\b(?:drop\s+(function|procedure|trigger|view|materialized\s+view|policy)\s+(?:if\s+exists\s+)?("[^"]+"|[\w.]+)|alter\s+(function|procedure|view)\s+([\w.]+)[^;]*?\brename\b)/gi;

export type Definition = { key: string; file: string; line: number };

/** SQL without comments, with string and dollar-quoted bodies blanked, keeping line numbers. */
function code(sql: string): string {
  return sql.replace(/\$(\w*)\$[\s\S]*?\$\1\$|'(?:[^']|'')*'|--[^\n]*/g, (m) => m.replace(/[^\n]/g, " "));
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split("\n").length;
}

const TYPE_ALIASES: Record<string, string> = {
  "int": "integer",
  "int4": "integer",
  "int8": "bigint",
  "bool": "boolean",
  "timestamp with time zone": "timestamptz",
  "float8": "double precision",
};

function canonicalType(type: string): string {
  const lower = type.toLowerCase();
  return TYPE_ALIASES[lower] ?? lower;
}

/** Argument types of `(…)` at `from`, names and defaults dropped: overloads are distinct objects. */
function signature(text: string, from: number): string {
  const open = text.indexOf("(", from);
  let depth = 0;
  let end = open;
  for (; end < text.length; end++) {
    if (text[end] === "(") depth++;
    if (text[end] === ")" && --depth === 0) break;
  }
  const args = text.slice(open + 1, end).split(/,(?![^(]*\))/).map((arg) =>
    arg.replace(/\s+(default\b|=)[\s\S]*$/i, "").trim().split(/\s+/).filter((w) =>
      !/^(in|out|inout|variadic)$/i.test(w)
    )
  ).filter((words) => words.length > 0);
  // A named argument is `name type…`; our functions name every argument.
  return args.map((words) => canonicalType((words.length > 1 ? words.slice(1) : words).join(" "))).join(",");
}

/** The target table of a trigger or policy definition starting at `from` (`… on <table>`). */
function target(text: string, from: number): string {
  return /\bon\s+([\w.]+)/i.exec(text.slice(from))?.[1]?.toLowerCase() ?? "?";
}

function keyOf(kind: string, name: string, text: string, at: number): string {
  const k = kind.toLowerCase().replace(/\s+/g, " ");
  const n = name.toLowerCase();
  if (k === "function" || k === "procedure") return `${k} ${n}(${signature(text, at)})`;
  if (k === "trigger" || k === "policy") return `${k} ${n} on ${target(text, at)}`;
  return `${k} ${n}`;
}

/** Every problem found in the given migrations (file name -> SQL), in file order. */
export function findRedefinitions(migrations: Map<string, string>): string[] {
  const created = new Map<string, Definition>();
  const problems: string[] = [];
  for (const [file, sql] of [...migrations].sort(([a], [b]) => a.localeCompare(b))) {
    const text = code(sql);
    for (const m of text.matchAll(CREATE)) {
      const key = keyOf(m[1]!, m[2]!, text, m.index! + m[0].length);
      const line = lineOf(text, m.index!);
      const first = created.get(key);
      if (first) {
        problems.push(`${file}:${line}: ${key} is already created at ${first.file}:${first.line}`);
      } else {
        created.set(key, { key, file, line });
      }
    }
    for (const m of text.matchAll(DROP_OR_RENAME)) {
      const kind = (m[1] ?? m[3])!.toLowerCase();
      const name = (m[2] ?? m[4])!.toLowerCase();
      const earlier = [...created.values()].find((d) =>
        d.file !== file && d.key.startsWith(`${kind} ${name}`) &&
        /[( ]/.test(d.key.charAt(`${kind} ${name}`.length))
      );
      if (earlier) {
        problems.push(
          `${file}:${
            lineOf(text, m.index!)
          }: drops or renames ${earlier.key}, created at ${earlier.file}:${earlier.line}`,
        );
      }
    }
  }
  return problems;
}

if (import.meta.main) {
  const dir = new URL("../supabase/migrations/", import.meta.url);
  const migrations = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".sql")) continue;
    if (
      !/^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])([01]\d|2[0-3])[0-5]\d[0-5]\d_\w+\.sql$/.test(entry.name)
    ) {
      console.error(`${entry.name}: a migration is named YYYYMMDDHHMMSS_<capability>.sql with a valid time`);
      Deno.exit(1);
    }
    migrations.set(entry.name, await Deno.readTextFile(new URL(entry.name, dir)));
  }
  const problems = findRedefinitions(migrations);
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) Deno.exit(1);
  console.log(`${migrations.size} migrations: every function, trigger, view and policy is created once`);
}
