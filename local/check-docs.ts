// `npm test` step: the README stays a front door (at most 150 lines) and every page under docs/ links back to
// it; no table row in either is wider than 120 characters, so each reads on a laptop screen.

const README_MAX_LINES = 150;
const TABLE_MAX_WIDTH = 120;

/** Problems in one markdown page; `isReadme` applies the front-door length limit instead of the back link. */
export function checkPage(name: string, text: string, isReadme: boolean): string[] {
  const problems: string[] = [];
  const lines = text.split("\n");
  if (text.endsWith("\n")) lines.pop();
  if (isReadme && lines.length > README_MAX_LINES) {
    problems.push(`${name}: ${lines.length} lines; the front door holds at most ${README_MAX_LINES}`);
  }
  if (!isReadme && !/\]\((\.\.\/)README\.md(#[\w-]*)?\)/.test(text)) {
    problems.push(`${name}: no link back to ../README.md`);
  }
  lines.forEach((line, i) => {
    if (line.trimStart().startsWith("|") && [...line].length > TABLE_MAX_WIDTH) {
      problems.push(
        `${name}:${i + 1}: table row of ${[...line].length} characters (at most ${TABLE_MAX_WIDTH})`,
      );
    }
  });
  return problems;
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  const problems = checkPage("README.md", await Deno.readTextFile(new URL("README.md", root)), true);
  let pages = 0;
  for await (const entry of Deno.readDir(new URL("docs/", root))) {
    if (!entry.name.endsWith(".md")) continue;
    pages++;
    const text = await Deno.readTextFile(new URL(`docs/${entry.name}`, root));
    problems.push(...checkPage(`docs/${entry.name}`, text, false));
  }
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) Deno.exit(1);
  console.log(`README and ${pages} docs pages: short front door, narrow tables, every page links back`);
}
