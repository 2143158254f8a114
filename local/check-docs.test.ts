import assert from "node:assert/strict";
import { checkPage } from "./check-docs.ts";

Deno.test("check-docs: a README over 150 lines and a wide table row are reported", () => {
  const wideRow = `| ${"x".repeat(120)} |`;
  const readme = ["# wabase", wideRow, ...Array.from({ length: 149 }, () => "text")].join("\n") + "\n";
  assert.deepEqual(checkPage("README.md", readme, true), [
    "README.md: 151 lines; the front door holds at most 150",
    "README.md:2: table row of 124 characters (at most 120)",
  ]);
});

Deno.test("check-docs: a docs page must link back to the README; long prose lines are not tables", () => {
  const prose = "word ".repeat(40);
  assert.deepEqual(checkPage("docs/a.md", `# A\n\n${prose}\n`, false), [
    "docs/a.md: no link back to ../README.md",
  ]);
  assert.deepEqual(
    checkPage("docs/a.md", `# A\n\n[Back to the README](../README.md)\n${prose}\n`, false),
    [],
  );
});
