// The status page in a real browser: headless Chromium on a phone-sized viewport, against the real functions
// server and test database, after real processor activity. A screenshot lands in bench/results/ (ignored by git).
import assert from "node:assert/strict";
import { launchChromium } from "../../../local/testing/browser.ts";
import { testDbUrl, testSql } from "../../../local/testing/db.ts";
import {
  clearBuffers,
  processorTestEnv,
  seedDueBuffers,
  startFakes,
} from "../../../local/testing/processor.ts";
import { spawnServer } from "../../../local/testing/server.ts";
import { createProcessor } from "../buffer-processor/processor.ts";
import type { OpsMetrics } from "./readiness.ts";

const screenshot = new URL("../../../bench/results/status-page.png", import.meta.url);
const PHONE = { width: 390, height: 844 };

Deno.test("the status page shows the figures and the last hour's chart, refreshes itself, without errors", async () => {
  const sql = testSql();
  const fakes = await startFakes();
  await clearBuffers(sql);
  const server = await spawnServer({ SUPABASE_DB_URL: testDbUrl() });
  const browser = await launchChromium();
  let deadLetter: string | undefined;
  try {
    // Activity to show: three batches claimed and answered, one dead letter, two buffers due now.
    await seedDueBuffers(sql, 3);
    const summary = await (await createProcessor(processorTestEnv(fakes), sql, "status-page-test")).drain();
    assert.equal(summary.batches, 3);
    const [inserted] = await sql<{ id: string }[]>`
      insert into wa.dead_letters (conversation_id, fence, attempts, errors, messages)
      select id, 0, 5, '[]', '[]' from public.conversations limit 1 returning id::text`;
    deadLetter = inserted?.id;
    await seedDueBuffers(sql, 2);

    const page = await browser.newPage({ viewport: PHONE });
    // The page's clock is the test's: its refresh timer fires only when the test moves time on, so what the
    // page draws is exactly what its first read of the metrics returned, whatever the wall-clock minute.
    await page.clock.install();
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
    const read = page.waitForResponse((res) => new URL(res.url()).pathname.endsWith("/health/metrics"));
    await page.goto(`${server.url}health/status?refresh=1`);
    const shown: OpsMetrics = (await (await read).json()).metrics;
    // (Expressions evaluated in the page are strings: this file is type-checked without the DOM library.)
    await page.waitForFunction(`document.getElementById("state").textContent !== "loading"`);

    const text = async (id: string) => (await page.textContent(`#${id}`))?.trim();
    assert.equal(await text("state"), "ready");
    assert.equal(await text("due_now"), "2");
    assert.equal(await text("buffers"), "2");
    assert.equal(await text("claims"), shown.last_hour.claims.toLocaleString("en-US"));
    assert.equal(await text("completions"), shown.last_hour.completions.toLocaleString("en-US"));
    assert.ok(shown.last_hour.completions >= 3);
    assert.equal(await text("dead_letters_hour"), shown.last_hour.dead_letters.toLocaleString("en-US"));
    assert.ok(shown.last_hour.dead_letters >= 1);
    assert.equal(await text("dead_letters"), shown.dead_letters.toLocaleString("en-US"));
    assert.equal(await text("calls_in_progress"), shown.calls.in_progress.toLocaleString("en-US"));
    assert.equal(await text("calls_answered_today"), shown.calls.answered_today.toLocaleString("en-US"));
    assert.equal(await text("calls_missed_today"), shown.calls.missed_today.toLocaleString("en-US"));
    const jobs = await page.locator("#jobs tr").count();
    assert.equal(jobs, Object.keys(shown.cron_jobs).length);

    // The chart: one line per series, one point per minute, each drawn as high as its minute's count.
    const lines = await Promise.all(
      (await page.locator("#chart polyline").all()).map(async (line) => ({
        series: await line.getAttribute("data-series"),
        points: ((await line.getAttribute("points")) ?? "").split(" ").map((p) => Number(p.split(",")[1])),
      })),
    );
    assert.deepEqual(lines.map((l) => [l.series, l.points.length]), [
      ["claims", 60],
      ["completions", 60],
      ["dead_letters", 60],
    ]);
    const counts = shown.per_minute.claims;
    assert.ok(counts.reduce((sum, n) => sum + n, 0) >= 3, "the claims of this test are in the last hour");
    const drawn = lines[0]!.points;
    for (let i = 0; i < counts.length; i++) {
      for (let j = 0; j < counts.length; j++) {
        // Higher on the screen is a smaller y.
        if (counts[i]! > counts[j]!) {
          assert.ok(drawn[i]! < drawn[j]!, `minute ${i} (${counts[i]}) above ${j}`);
        }
        if (counts[i] === counts[j]) assert.equal(drawn[i], drawn[j], `minutes ${i} and ${j} level`);
      }
    }

    // Readable on a phone: nothing wider than the screen.
    const width = Number(await page.evaluate("document.documentElement.scrollWidth"));
    assert.ok(width <= PHONE.width, `page width ${width} px on a ${PHONE.width} px screen`);

    // It refreshes itself: a new due buffer shows up without a reload once its refresh second has passed.
    await seedDueBuffers(sql, 1);
    await page.clock.runFor(1000);
    await page.waitForFunction(`document.getElementById("due_now").textContent === "3"`);

    await Deno.mkdir(new URL(".", screenshot), { recursive: true });
    await page.screenshot({ path: screenshot.pathname, fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    if (deadLetter !== undefined) await sql`delete from wa.dead_letters where id = ${deadLetter}`;
    await clearBuffers(sql);
    await server.stop();
    await sql.end();
    await fakes.close();
  }
});
