// Teams in headless Chromium: Microsoft's Agents Playground web page (one per person, each its own Teams
// client) against madoguchi. The requester types `leave`, fills the Adaptive Card form as rendered by the
// Playground (Microsoft's renderer with Fluent UI inputs), submits it and sees the outcome; the manager's page
// shows the approver card arriving unprompted, he presses Approve and the card turns into the outcome; the
// requester's status card shows it too.
// Usage: node teams_flow.mjs REQUESTER_URL APPROVER_URL SCREENSHOT_DIR LEAVE_DAY
// Driven by playwright-core with the system Chromium (no browser download). Exits non-zero on any failure and
// on any error in a page's console that is not the Playground's own (see `playgroundNoise`). Every request
// for a host other than loopback is refused; each one is printed as a `blocked: URL` line for the test.
//
// The selectors come from the Playground's shipped page (node_modules/@microsoft/m365agentsplayground/dist/
// client, 0.2.28): a Lexical editor as the compose box, cards rendered as `.ac-adaptiveCard`, Input.ChoiceSet
// as a Fluent Combobox (options in a listbox outside the card), Input.Date as a Fluent DatePicker that accepts
// typed text (allowTextInput, parsed with Date.parse), buttons named by their Action titles.
import { chromium } from "playwright-core";
import path from "node:path";

const [requesterUrl, approverUrl, shots, leaveDay] = process.argv.slice(2);
if (!requesterUrl || !approverUrl || !shots || !leaveDay) {
  console.error("usage: node teams_flow.mjs REQUESTER_URL APPROVER_URL SCREENSHOT_DIR LEAVE_DAY");
  process.exit(2);
}
const step = (what) => console.log(`step: ${what}`);
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

// What the Playground's page itself asks of Microsoft's CDN (fabric-cdn: Segoe UI fonts and Fluent's "flair"
// animation worklet). Refused here like everything off this machine; the console errors the refusals cause
// are the Playground's, not ours, so they alone are let through. Anything else blocked fails the test.
const PLAYGROUND_CDN = /^https:\/\/res-1\.cdn\.office\.net\/files\/fabric-cdn-prod_\d+\.\d+\/assets\//;
const blocked = [];
const playgroundNoise = (message) => {
  const where = message.location()?.url || "";
  const text = message.text();
  return (PLAYGROUND_CDN.test(where) && text.startsWith("Failed to load resource"))
    || (text.startsWith("Failed to load worklet module script: ") && PLAYGROUND_CDN.test(text.split(": ")[1]));
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // belt and braces under the route below: traffic Playwright does not route (websockets, prefetches)
    // cannot resolve any name but loopback either
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"],
});
const problems = [];
try {
  // The company's time zone: a typed ISO date (Date.parse: UTC midnight) stays the same day in it, and the
  // cards' times read as they would in Tokyo.
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US",
    timezoneId: "Asia/Tokyo" });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    const host = new URL(url).hostname;
    if (LOOPBACK.has(host) || /^127\./.test(host)) return route.continue();
    blocked.push(url);
    console.log(`blocked: ${url}`);
    if (!PLAYGROUND_CDN.test(url)) problems.push(`the page tried to load ${url} (off this machine)`);
    return route.abort("blockedbyclient");
  });
  const open = async (who, url) => {
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on("pageerror", (e) => problems.push(`${who}'s page error: ${e}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !playgroundNoise(m)) problems.push(`${who}'s console: ${m.text()}`);
    });
    await page.goto(url);
    // the Playground's log panel (its own debugging aid, not part of Teams) hides half the chat: close it
    await page.locator('button[title="Toggle Log Panel"]').click();
    return page;
  };
  const cards = (page, ...words) => {
    let found = page.locator(".ac-adaptiveCard");
    for (const word of words) found = found.filter({ hasText: word });
    return found;
  };

  step("the manager opens his Teams (the Playground installs the app: he is greeted)");
  const manager = await open("the manager", approverUrl);
  await cards(manager, "How to use madoguchi").first().waitFor();

  step("the requester opens hers and types `leave`");
  const requester = await open("the requester", requesterUrl);
  await cards(requester, "How to use madoguchi").first().waitFor();
  const compose = requester.locator('[data-lexical-editor="true"][role="textbox"]');
  await compose.click();
  await requester.keyboard.type("leave");
  await requester.keyboard.press("Enter");
  const form = cards(requester, "Leave request", "Dates (Start)").last();
  await form.waitFor();

  step("she fills in the card and presses Submit");
  await form.getByRole("combobox", { name: /^Unit/ }).click();
  await requester.getByRole("option", { name: "Full day", exact: true }).click();
  await form.getByRole("combobox", { name: /^Dates \(Start\)/ }).fill(leaveDay);
  await form.getByRole("combobox", { name: /^Dates \(End\)/ }).fill(leaveDay);
  // typing elsewhere blurs the last date: the DatePicker parses what was typed on blur
  await form.getByRole("textbox", { name: /^Reason/ }).fill("Doctor's appointment");
  await form.getByRole("button", { name: "Submit", exact: true }).click();
  const submitted = cards(requester, "Submitted LV-");
  await submitted.first().waitFor();
  const number = (await submitted.first().innerText()).match(/LV-\d{4}-\d{4}/)[0];
  const status = cards(requester, `Leave request ${number}`, "Pending");
  await status.first().waitFor();
  console.log(`filed: ${number}`);

  step("the approver card arrives in the manager's Teams unprompted");
  await manager.bringToFront();
  const card = cards(manager, number, "Ai Takahashi").last();
  const approve = card.getByRole("button", { name: "Approve", exact: true });
  await approve.waitFor();
  await card.scrollIntoViewIfNeeded();
  await manager.screenshot({ path: path.join(shots, "teams-approver.png") });

  step("he presses Approve and the card turns into the outcome");
  await approve.click();
  await cards(manager, number, "Approved").last().waitFor();
  await manager.waitForFunction(
    (n) => ![...document.querySelectorAll(".ac-adaptiveCard")].some((c) => c.innerText.includes(n)
      && [...c.querySelectorAll("button")].some((b) => b.innerText.trim() === "Approve")), number);

  step("the requester's status card shows the outcome");
  await requester.bringToFront();
  const outcome = cards(requester, `Leave request ${number}`, "Approved").last();
  await outcome.waitFor();
  if (await cards(requester, `Leave request ${number}`, "Pending").count() !== 0) {
    throw new Error("the requester's status card still says Pending after the approval");
  }
  await outcome.scrollIntoViewIfNeeded();
  await requester.screenshot({ path: path.join(shots, "teams-requester.png") });
  console.log(`done: ${number} filed in the requester's Teams, approved in the manager's`);
} catch (error) {
  problems.push(String(error?.stack || error));
} finally {
  await browser.close();
}
console.log(`blocked requests: ${blocked.length}`);
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
