// Drives the emulator's dashboard in headless Chromium (Debian's /usr/bin/chromium) with
// playwright-core. Started by crates/iothub-emulator/tests/dashboard.rs, which runs the
// emulator and the device and passes the per-run values in the environment:
//   DASHBOARD_URL, DEVICE_ID, MARKER (in the device's telemetry), METHOD_TOKEN (in the
//   device's method answer), DESIRED_VALUE, C2D_TEXT, CHROMIUM, SCREENSHOT.
// Exits 0 and prints "dashboard e2e: ok" only when every step was seen on the page.
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env('DASHBOARD_URL');
const device = env('DEVICE_ID');
const marker = env('MARKER');
const methodToken = env('METHOD_TOKEN');
const desiredValue = Number(env('DESIRED_VALUE'));
const c2dText = env('C2D_TEXT');
const screenshot = env('SCREENSHOT');
const addDevice = env('ADD_DEVICE');
const removeDevice = env('REMOVE_DEVICE');

const step = (text) => console.log(`step: ${text}`);
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // Flags this machine needs (no sandbox as root, no network beyond loopback).
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });

  step(`open ${url}`);
  await page.goto(url);
  await page.getByRole('heading', { name: 'IoT Hub emulator' }).waitFor();

  step('the device is listed as connected and can be selected');
  const entry = page.getByRole('button', { name: new RegExp(`^${device}, connected`) });
  await entry.click();
  await page.locator('#device-state', { hasText: 'Connected' }).waitFor();
  await page.waitForFunction(() => document.getElementById('connection-string').value.startsWith('HostName='));
  const cs = await page.getByLabel('Connection string').inputValue();
  if (!cs.startsWith('HostName=') || !cs.includes(`DeviceId=${device};SharedAccessKey=`)) {
    throw new Error(`connection string shown: ${cs}`);
  }
  await page.getByRole('button', { name: 'Copy connection string' }).click();
  await page.locator('#copy-result', { hasText: 'Copied' }).waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  if (copied !== cs) throw new Error(`clipboard holds: ${copied}`);

  step('live telemetry with the run marker appears in the table and the chart legend');
  await page.locator('#telemetry-table tbody td', { hasText: marker }).first().waitFor();
  await page.locator('#telemetry-table thead th', { hasText: 'temperature' }).waitFor();
  await page.locator('#legend span', { hasText: 'temperature' }).waitFor();
  const rowsBefore = await page.locator('#telemetry-table tbody tr').count();
  await page.waitForFunction((n) => document.querySelectorAll('#telemetry-table tbody tr').length > n, rowsBefore);

  step('invoke the reboot method and see the device answer');
  await page.getByRole('tab', { name: 'Direct method' }).click();
  await page.getByLabel('Method name').fill('reboot');
  await page.getByLabel('Payload (JSON)').fill(JSON.stringify({ marker, delay: 1 }));
  await page.getByRole('button', { name: 'Invoke' }).click();
  await page.locator('#method-status', { hasText: 'Status 200' }).waitFor();
  const answer = JSON.parse(await page.locator('#method-response').textContent());
  if (answer.token !== methodToken || answer.method !== 'reboot' || answer.echo.marker !== marker) {
    throw new Error(`method answer shown: ${JSON.stringify(answer)}`);
  }

  step('send a C2D message and see it completed');
  await page.getByRole('tab', { name: 'Cloud-to-device' }).click();
  await page.getByLabel('Message body').fill(JSON.stringify({ text: c2dText }));
  await page.getByRole('button', { name: 'Send message' }).click();
  await page.locator('#c2d-list li', { hasText: c2dText }).locator('.tag', { hasText: 'completed' }).waitFor();

  step('edit a desired property and see the reported ack come back');
  await page.getByRole('tab', { name: 'Twin' }).click();
  await page.getByLabel(/Desired properties patch/).fill(JSON.stringify({ targetTemperature: desiredValue }));
  await page.getByRole('button', { name: 'Update desired' }).click();
  await page.locator('#desired-result', { hasText: `Device reported back targetTemperature = ${desiredValue}` }).waitFor();
  await page.locator('#twin-reported', { hasText: `"targetTemperature": ${desiredValue}` }).waitFor();

  step(`add ${addDevice}, delete ${removeDevice}`);
  await page.getByLabel('New device id').fill(addDevice);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.getByRole('button', { name: new RegExp(`^${addDevice}, disconnected`) }).waitFor();
  await page.locator('#device-title', { hasText: addDevice }).waitFor();
  await page.getByRole('button', { name: new RegExp(`^${removeDevice}, `) }).click();
  await page.locator('#device-title', { hasText: removeDevice }).waitFor();
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('button', { name: `Confirm delete ${removeDevice}` }).click();
  await page.getByRole('button', { name: new RegExp(`^${removeDevice}, `) }).waitFor({ state: 'detached' });
  await page.getByRole('button', { name: new RegExp(`^${device}, connected`) }).click();
  await page.getByRole('tab', { name: 'Twin' }).click();
  await page.locator('#twin-reported', { hasText: `"targetTemperature": ${desiredValue}` }).waitFor();

  if (problems.length) throw new Error(problems.join('\n'));
  // A fuller chart for the artifact.
  await page.waitForFunction(() => document.querySelectorAll('#telemetry-table tbody tr').length >= 14);
  await page.screenshot({ path: screenshot });
  console.log(`screenshot: ${screenshot}`);
  console.log('dashboard e2e: ok');
} catch (e) {
  if (page) await page.screenshot({ path: screenshot }).catch(() => {});
  console.error(`dashboard e2e failed: ${e.stack || e}`);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
