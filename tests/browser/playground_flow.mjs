// The playground in headless Chromium: file a leave request as 鈴木 美咲, approve it as her manager 佐藤 健二,
// and see her card updated. Usage: node playground_flow.mjs BASE_URL SCREENSHOT_DIR LEAVE_DAY
// Driven by playwright-core with the system Chromium (no browser download). Exits non-zero on any failure or
// on any error in the page's console.
import { chromium } from "playwright-core";
import path from "node:path";

const [base, shots, leaveDay] = process.argv.slice(2);
if (!base || !shots || !leaveDay) {
  console.error("usage: node playground_flow.mjs BASE_URL SCREENSHOT_DIR LEAVE_DAY");
  process.exit(2);
}
const EMPLOYEE = "UE0003"; // 鈴木 美咲
const MANAGER = "UE0002"; // 佐藤 健二
const step = (what) => console.log(`step: ${what}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, locale: "ja-JP" });
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });

  step("open the playground as 鈴木 美咲");
  await page.goto(`${base}/?as=${EMPLOYEE}`);
  await page.locator(`.nav-item[data-conversation="D${EMPLOYEE}"]`).click();

  step("type the slash command");
  await page.locator("#composer").fill("/madoguchi leave");
  await page.locator("#composer").press("Enter");
  const modal = page.locator("[data-view-id]").last();
  await modal.waitFor();
  await modal.getByText("休暇申請").first().waitFor();

  step("fill in the form and submit");
  await modal.locator('select[data-block-id="unit"]').selectOption({ label: "全日" });
  await modal.locator('[data-block-id="period.start"]').fill(leaveDay);
  await modal.locator('[data-block-id="period.end"]').fill(leaveDay);
  await modal.locator('[data-block-id="reason"]').fill("通院のため");
  await modal.locator(".modal-submit").click();
  await page.locator("[data-view-id]").waitFor({ state: "detached" });
  const status = page.locator(".message", { hasText: "承認待ち" }).last();
  await status.waitFor();

  step("switch to the manager, 佐藤 健二");
  await page.locator("#who").selectOption(MANAGER);
  await page.locator(`.nav-item[data-conversation="D${MANAGER}"]`).click();
  const card = page.locator(".message", { hasText: "鈴木 美咲" }).last();
  await card.getByRole("button", { name: "承認", exact: true }).waitFor();
  await page.screenshot({ path: path.join(shots, "playground-approver.png") });

  step("approve from the card");
  await card.getByRole("button", { name: "承認", exact: true }).click();
  const confirm = page.locator(".confirm-dialog");
  if (await confirm.isVisible().catch(() => false)) await confirm.locator(".confirm-ok").click();
  await page.locator(".message", { hasText: "承認済み" }).last().waitFor();
  if (await card.getByRole("button", { name: "承認", exact: true }).count() !== 0) {
    throw new Error("the approver's card still shows the Approve button after the decision");
  }

  step("back to 鈴木 美咲: her card shows the outcome");
  await page.locator("#who").selectOption(EMPLOYEE);
  await page.locator(`.nav-item[data-conversation="D${EMPLOYEE}"]`).click();
  await page.locator(".message", { hasText: "承認済み" }).last().waitFor();
  await page.screenshot({ path: path.join(shots, "playground-requester.png") });
  console.log("done: filed, approved and the requester's card updated");
} catch (error) {
  problems.push(String(error?.stack || error));
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
