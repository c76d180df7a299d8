// Browser end-to-end test of the chat page: Debian's headless Chromium driven
// by playwright-core against a running `seed serve` that serves two editions,
// `cici` (English) and `doubao` (Chinese); see crates/seed/tests/browser_e2e.rs.
//
//   node web/e2e/chat.mjs <port> <screenshot dir>
//
// Prints "browser checks passed" and exits 0 when every check holds; exits 1
// naming the first failing check otherwise. Every wait is bounded.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const [port, shots] = process.argv.slice(2);
if (!port || !shots) { console.error('usage: node chat.mjs <port> <screenshot dir>'); process.exit(2); }
const base = `http://127.0.0.1:${port}`;
const axePath = join(dirname(fileURLToPath(import.meta.url)), 'node_modules/axe-core/axe.min.js');
const profile = mkdtempSync(join(tmpdir(), 'seed-chromium-'));
const foreign = [];
let ctx, page;

function check(cond, what) { if (!cond) throw new Error('check failed: ' + what); console.log('ok: ' + what); }
const idle = '#stop[hidden]';

async function main() {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SEED_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 820 },
    colorScheme: 'light',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
  ctx.setDefaultTimeout(120_000);
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  // Frame times: every requestAnimationFrame callback is timed, and a counter runs each frame.
  await ctx.addInitScript(() => {
    const raf = window.requestAnimationFrame.bind(window);
    window.__frames = { callbacks: 0, max: 0 };
    window.requestAnimationFrame = cb => raf(ts => {
      const t0 = performance.now(); cb(ts); const d = performance.now() - t0;
      window.__frames.callbacks++; if (d > window.__frames.max) window.__frames.max = d;
    });
  });
  const bodies = [];
  let forceTool = false, uncapped = false;
  // Any request to another host is recorded and refused; answers are capped at a few dozen
  // tokens so finished answers arrive quickly on a small CPU (except the one the test stops).
  await ctx.route('**/*', async route => {
    const req = route.request();
    if (!req.url().startsWith(base + '/')) { foreign.push(req.url()); return route.abort(); }
    if (req.url().endsWith('/v1/chat/completions') && req.method() === 'POST') {
      const body = JSON.parse(req.postData());
      bodies.push(JSON.parse(req.postData()));
      if (!uncapped) body.max_tokens = Math.min(body.max_tokens || Infinity, body.tools ? 80 : 24);
      uncapped = false;
      // One call, forced, so the scenario below is the same every run.
      if (forceTool && body.tools) { body.tool_choice = 'required'; body.parallel_tool_calls = false; }
      return route.continue({ postData: JSON.stringify(body) });
    }
    return route.continue();
  });
  page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  page.on('dialog', d => d.dismiss());
  const size = (await (await fetch(base + '/')).arrayBuffer()).byteLength;
  check(size <= 150 * 1024, `the page is ${(size / 1024).toFixed(1)} KB uncompressed (at most 150 KB)`);
  await page.goto(base + '/');

  const axe = async (state) => {
    if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ path: axePath });
    const r = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const v = r.violations.map(x => `${x.id} (${x.impact}): ${x.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`);
    check(v.length === 0, `axe-core: 0 violations — ${state}${v.length ? ': ' + v.join('; ') : ''}`);
  };
  // Every word of the interface comes from the current language's table (or is data: an
  // edition's name, greeting, suggestions, persona; a chat's title; model output).
  const strings = async (want) => {
    const bad = await page.evaluate(() => {
      const table = STRINGS[document.documentElement.lang.startsWith('zh') ? 'zh' : 'en'];
      const pat = s => new RegExp('^' + s.split(/\{\d\}/).map(p => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*') + '$');
      const pats = Object.values(table).flat().map(pat);
      const data = new Set(cards.flatMap(c => c.edition ? [c.edition.display_name, c.edition.greeting, c.edition.system, ...c.edition.suggestions] : [c.id]));
      for (const c of convs) data.add(c.title);
      const skip = '#log .body, #log .tool pre, #list .title, #list .when, #model, time, code, .avatar, #brandname, #tools, #s-system';
      const out = [];
      const ok = s => { s = s.trim(); return !s || /^[\d\s.,:+·]*$/.test(s) || data.has(s) || pats.some(p => p.test(s)); };
      for (const e of document.body.querySelectorAll('*')) {
        if (e.closest(skip) || e.tagName === 'SCRIPT' || e.tagName === 'STYLE') continue;
        for (const n of e.childNodes) if (n.nodeType === 3 && !ok(n.textContent)) out.push(n.textContent.trim());
        for (const a of ['aria-label', 'title', 'placeholder']) if (e.hasAttribute(a) && !ok(e.getAttribute(a))) out.push(`${a}=${e.getAttribute(a)}`);
      }
      if (!ok(document.title.replace(/^.* · /, ''))) out.push('title=' + document.title);
      return out;
    });
    check(bad.length === 0, `every interface string comes from the ${want} table${bad.length ? ': ' + bad.join(' | ') : ''}`);
  };

  // The edition picker is filled from /v1/models; each edition shows its own face.
  await page.waitForFunction(() => document.querySelectorAll('#model option').length >= 4, null, { timeout: 30_000 });
  const names = await page.$$eval('#model option', os => os.map(o => `${o.value}=${o.textContent}`));
  check(names.includes('cici=Cici') && names.includes('doubao=豆包'), `the picker lists the editions by their display names (${names.join(', ')})`);
  await page.selectOption('#model', 'cici');
  const faceOf = () => page.evaluate(() => ({
    brand: document.querySelector('#brandname').textContent, greeting: document.querySelector('#empty h2')?.textContent,
    sugg: [...document.querySelectorAll('#sugg button')].map(b => b.textContent), lang: document.documentElement.lang,
    accent: document.documentElement.style.getPropertyValue('--accent'), on: document.documentElement.style.getPropertyValue('--onaccent'),
    ph: document.querySelector('#in').placeholder, title: document.title }));
  let f = await faceOf();
  check(f.brand === 'Cici' && f.greeting === "Hi, I'm Cici. What shall we explore today?" && f.lang === 'en', `cici's name, greeting and English interface (${JSON.stringify(f)})`);
  check(f.sugg.length === 2 && f.sugg[0] === 'Name three colours of the sea.', 'the empty state offers cici\'s suggested prompts');
  check(f.accent === '#e0457b' && f.on === '#000' && f.ph === 'Message Cici', 'cici\'s accent (with black text, the higher contrast on it) and placeholder');
  await axe('empty chat, desktop, light, English');
  await strings('English');

  // Markdown from the model is rendered as DOM, never as HTML; code blocks get a copy button.
  const safe = await page.evaluate(() => {
    const d = document.createElement('div');
    markdown(d, '# Title\n\n<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>\n\n**bold** `x<b>` [a](javascript:alert(1))\n\n```rust\nfn main() { let s = "<b>"; } // hi\n```');
    return { img: d.querySelectorAll('img,script,b').length, text: d.textContent, strong: d.querySelectorAll('strong').length,
      kw: d.querySelectorAll('pre code .kw').length, links: d.querySelectorAll('a').length, h: d.querySelectorAll('h2').length,
      copy: d.querySelectorAll('.code button[data-copy]').length, lang: d.querySelector('.code header span').textContent };
  });
  check(safe.img === 0 && safe.text.includes('<img src=x'), 'model output cannot inject HTML (shown as text)');
  check(safe.strong === 1 && safe.h === 1 && safe.kw >= 2 && safe.links === 0, 'markdown: heading, bold, highlighted code; no javascript: links');
  check(safe.copy === 1 && safe.lang === 'rust', 'a code block has its language and a copy button');
  // Streaming renders block by block and ends exactly as a whole rendering would.
  const same = await page.evaluate(() => {
    const src = 'Intro *x*\n\n- a\n- b\n\n```py\nx = 1\n\ny = 2\n```\n\n> q\n\nend **b**';
    const whole = document.createElement('div'); markdown(whole, src);
    const part = document.createElement('div'); const r = streamer(part);
    for (let i = 1; i <= src.length; i += 3) r(src.slice(0, i)); r(src);
    const tail = part.lastElementChild; tail.replaceWith(...tail.childNodes);
    return whole.innerHTML === part.innerHTML || [whole.innerHTML, part.innerHTML];
  });
  check(same === true, `streamed rendering equals the whole rendering (${JSON.stringify(same)})`);

  // A suggested prompt sends itself; the answer streams with a visible state, then shows
  // its name, time, token counts and actions.
  await page.click('#sugg button >> nth=0');
  await page.waitForFunction(() => { const a = document.querySelectorAll('.assistant'); return a.length && a[a.length - 1].textContent.length > 0; }, null, { timeout: 90_000 });
  const live = await page.evaluate(() => ({ stop: !document.querySelector('#stop').hidden, streaming: !!document.querySelector('.turn.streaming .body[aria-busy=true]'),
    status: document.querySelector('#status').textContent }));
  check(live.stop && live.streaming && live.status === 'Cici is writing…', `the answer streams with Stop shown, a busy marker and a status (${JSON.stringify(live)})`);
  await page.waitForSelector(idle, { state: 'attached', timeout: 120_000 });
  check(bodies[bodies.length - 1].model === 'cici' && bodies[bodies.length - 1].messages[0].content === 'Name three colours of the sea.', 'the suggestion went as the first message to cici');
  const stats = await page.textContent('.meta .stats');
  check(/^\d+ prompt \+ \d+ answer tokens · [\d.]+ tok\/s$/.test(stats), `token counts and speed under the answer ("${stats}")`);
  const turn = await page.evaluate(() => [...document.querySelectorAll('.turn')].map(t => [t.querySelector('.who b').textContent, !!t.querySelector('time')]));
  check(JSON.stringify(turn) === '[["You",true],["Cici",true]]', `each message has its author and time (${JSON.stringify(turn)})`);
  for (const label of ['Copy', 'Regenerate', 'Edit']) check(await page.locator('.meta button', { hasText: label }).count() === 1, `a ${label} button`);
  const cardWant = (await page.evaluate(async () => (await (await fetch('/v1/models')).json()).data)).find(c => c.id === 'cici').chat_sampling;
  check(Object.entries(cardWant).every(([k, v]) => bodies[bodies.length - 1][k] === v), `the page sends cici's chat sampling (${JSON.stringify(cardWant)})`);
  await page.evaluate(() => { const d = document.createElement('div'); d.id = 'probe'; markdown(d, '```sh\necho copied\n```'); document.querySelector('#log').append(d); });
  await page.click('#probe button[data-copy]');
  check(await page.evaluate(() => navigator.clipboard.readText()) === 'echo copied' && await page.textContent('#probe button') === 'Copied', 'the copy button copies the code');
  await page.evaluate(() => document.querySelector('#probe').remove());
  await page.screenshot({ path: join(shots, 'web-desktop.png') });

  // Stop a long generation with Esc; the partial answer stays, marked as stopped.
  uncapped = true;
  await page.fill('#in', 'Tell me a long story about a lighthouse keeper.');
  await page.press('#in', 'Enter');
  await page.waitForFunction(() => { const a = document.querySelectorAll('.assistant'); return a.length === 2 && a[1].textContent.length > 20; }, null, { timeout: 90_000 });
  const t0 = Date.now();
  await page.keyboard.press('Escape');
  await page.waitForSelector(idle, { state: 'attached', timeout: 10_000 });
  const stopMs = Date.now() - t0;
  const stopped = await page.$$eval('.assistant', a => a[1].textContent.length);
  await page.waitForTimeout(1500);
  const later = await page.$$eval('.assistant', a => a[1].textContent.length);
  check(stopped > 0 && later === stopped && (await page.$$eval('.note', n => n[n.length - 1].textContent)) === 'Stopped.', `Esc stops the generation within ${stopMs} ms; the partial answer stays, marked`);

  // Regenerate: a new answer in a new stored conversation that replaces the old one.
  const before = await page.evaluate(() => ({ cur, n: convs.length }));
  await page.click('.meta button:has-text("Regenerate")');
  await page.waitForFunction(() => document.querySelectorAll('.assistant').length === 2 && document.querySelector('#stop').hidden && document.querySelectorAll('.meta .stats').length === 2, null, { timeout: 120_000 });
  await page.waitForFunction(b => convs.length === b.n && convs[0].id === cur && !convs.some(c => c.id === b.cur), before, { timeout: 10_000 }).catch(() => {});
  const after = await page.evaluate(() => ({ cur, n: convs.length, ids: convs.map(c => c.id) }));
  check(after.cur !== before.cur && after.n === before.n && !after.ids.includes(before.cur), `regenerate keeps one conversation in the list (${before.n} → ${after.n})`);

  // Edit and resend the last user message.
  await page.click('.turn.user .meta button:has-text("Edit")');
  await page.fill('.edit textarea', 'Tell me a short story about a lighthouse keeper.');
  await page.click('.edit button:has-text("Save and send")');
  await page.waitForSelector(idle, { state: 'attached', timeout: 120_000 });
  await page.waitForFunction(() => document.querySelectorAll('.turn.user').length === 2 && document.querySelectorAll('.meta .stats').length === 2, null, { timeout: 120_000 });
  const users = await page.$$eval('.turn.user .body', b => b.map(x => x.textContent));
  const seaId = await page.evaluate(() => cur);
  check(users[1] === 'Tell me a short story about a lighthouse keeper.' && bodies[bodies.length - 1].messages.some(m => m.content === users[1]), 'edit-and-resend replaces the last message and asks again');

  // Settings, persisted per browser: a system prompt, temperature and answer length.
  await page.focus('#setbtn');
  await page.keyboard.press('Enter');
  check(await page.evaluate(() => document.querySelector('#settings').open && document.querySelector('#s-system').placeholder.startsWith('You are Cici')), 'settings open from the keyboard and show the edition\'s persona');
  await axe('settings dialog, light, English');
  await page.fill('#s-system', 'Answer like a pirate.');
  await page.locator('#s-system').blur();
  await page.fill('#s-max', '16');
  await page.locator('#s-max').blur();
  await page.$eval('#s-temp', e => { e.value = '0'; e.dispatchEvent(new Event('input')); });
  await page.keyboard.press('Escape');
  check(!(await page.evaluate(() => document.querySelector('#settings').open)), 'Esc closes the settings');
  await page.click('#new');
  await page.fill('#in', 'Say hi.');
  await page.press('#in', 'Enter');
  await page.waitForSelector(idle, { state: 'attached', timeout: 120_000 });
  const sent = bodies[bodies.length - 1];
  check(sent.temperature === 0 && sent.max_tokens === 16 && sent.messages[0].role === 'system' && sent.messages[0].content === 'Answer like a pirate.',
    `a new chat carries the settings (${JSON.stringify({ t: sent.temperature, m: sent.max_tokens, first: sent.messages[0] })})`);
  await page.click('#setbtn');
  await page.click('#s-reset');
  await page.keyboard.press('Escape');
  check(await page.evaluate(() => JSON.parse(localStorage.getItem('seed.settings')).system === '' && settings.maxTokens === null && settings.temperature === null), 'Reset brings back the defaults');

  // Rename from the keyboard; search titles and text on the server.
  await page.waitForFunction(() => document.querySelectorAll('#list li').length >= 2, null, { timeout: 10_000 });
  const curId = await page.evaluate(() => cur);
  await page.focus(`#list li[data-id="${curId}"] button[aria-label^="Rename"]`);
  await page.keyboard.press('Enter');
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type('Pirate greetings');
  await page.keyboard.press('Enter');
  await page.waitForFunction(id => document.querySelector(`#list li[data-id="${id}"] .title`)?.textContent === 'Pirate greetings', curId, { timeout: 10_000 });
  const stored = await page.evaluate(async id => (await (await fetch('/v1/conversations/' + id)).json()).title, curId);
  check(stored === 'Pirate greetings', 'rename from the keyboard is stored on the server');
  await page.fill('#search', 'LIGHTHOUSE');
  await page.waitForFunction(() => document.querySelectorAll('#list li').length === 1, null, { timeout: 10_000 });
  check(await page.getAttribute('#list li', 'data-id') === seaId, 'search finds a chat by the text of a message (case ignored)');
  await page.fill('#search', 'zebra-xylophone');
  await page.waitForFunction(() => document.querySelectorAll('#list li').length === 0, null, { timeout: 10_000 });
  check((await page.textContent('#listnote')) === 'No chat contains “zebra-xylophone”.', 'a search with no match says so');
  await page.fill('#search', '');
  await page.waitForFunction(() => document.querySelectorAll('#list li').length >= 2, null, { timeout: 10_000 });

  // Delete with undo: undone, the chat stays on the server; not undone, it goes.
  const n0 = await page.locator('#list li').count();
  await page.click(`#list li[data-id="${curId}"] button[aria-label^="Delete"]`);
  check(await page.locator('#list li').count() === n0 - 1 && await page.isVisible('#toast') && (await page.textContent('#toastmsg')) === 'Chat deleted.', 'delete hides the chat and offers Undo');
  await axe('undo toast, light, English');
  await page.click('#undo');
  check(await page.locator('#list li').count() === n0 && (await page.evaluate(async id => (await fetch('/v1/conversations/' + id)).status, curId)) === 200, 'Undo brings it back; the server never deleted it');
  await page.click(`#list li[data-id="${curId}"] button[aria-label^="Delete"]`);
  await page.waitForSelector('#toast', { state: 'hidden', timeout: 15_000 });
  await page.waitForFunction(async id => (await fetch('/v1/conversations/' + id)).status === 404, curId, { timeout: 10_000 });
  check(true, 'without Undo the chat is deleted on the server when the offer ends');

  // Tools: a call shows as a card, the next input is its result, and the model goes on.
  await page.click('#new');
  await page.click('#toolsbtn');
  const weather = [{ type: 'function', function: { name: 'get_weather', description: 'The weather now in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'London', 'Tokyo'] } },
      required: ['city'], additionalProperties: false } } }];
  await page.fill('#tools', JSON.stringify(weather));
  await page.click('#toolssave');
  check((await page.textContent('#toolsnote')).includes('get_weather') && (await page.getAttribute('#toolsbtn', 'aria-label')) === 'Tools (1)', 'the tools panel takes a tools array');
  forceTool = true;
  await page.fill('#in', 'What is the weather in Paris right now?');
  await page.press('#in', 'Enter');
  await page.waitForSelector(idle, { state: 'attached', timeout: 120_000 });
  check(await page.locator('.tool').count() === 1, `one tool call card (error: "${await page.textContent('#err')}")`);
  const card = await page.textContent('.tool');
  check(card.startsWith('Tool call · get_weather') && /"city": "(Paris|London|Tokyo)"/.test(card), `the call shows as a card with its arguments (${card})`);
  check((await page.getAttribute('#in', 'placeholder')).includes('Result of get_weather'), 'the input asks for the result of the call');
  const asked = bodies[bodies.length - 1];
  check(asked.tools && asked.tools.length === 1 && !asked.conversation, 'the request carries the tools and the whole history');
  forceTool = false;
  await page.fill('#in', '{"temperature": 18, "sky": "clear"}');
  await page.press('#in', 'Enter');
  await page.waitForFunction(() => document.querySelectorAll('.tool').length >= 2 && document.querySelector('#stop').hidden, null, { timeout: 120_000 });
  const followed = bodies[bodies.length - 1];
  const called = followed.messages.find(m => m.tool_calls);
  const result = followed.messages.find(m => m.role === 'tool');
  check(called && result && result.tool_call_id === called.tool_calls[0].id && called.content === null, 'the result goes back as a tool message answering the call');
  check((await page.$$eval('.tool header', hs => hs.map(h => h.textContent)))[1] === 'Tool result · get_weather', 'the result shows as a card');
  await page.screenshot({ path: join(shots, 'web-tools.png') });
  await page.click('#toolsclear');
  await page.click('#toolsbtn');
  await page.evaluate(() => { localStorage.removeItem('seed.settings'); });

  // Dark theme: the toggle, remembered across a reload; axe on both states.
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#model option').length >= 4 && document.querySelector('#brandname').textContent === 'Cici', null, { timeout: 30_000 });
  const item = page.locator(`#list li[data-id="${seaId}"] .open`);
  await item.waitFor({ timeout: 10_000 });
  await item.click();
  await page.waitForFunction(() => document.querySelectorAll('.turn.bot').length >= 2, null, { timeout: 10_000 });
  check(true, 'after a reload a stored chat opens with its messages');
  await axe('a chat with answers, desktop, light, English');
  await page.click('#themebtn');
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'the theme toggle switches to dark');
  await axe('a chat with answers, desktop, dark, English');
  await page.screenshot({ path: join(shots, 'web-desktop-dark.png') });
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#model option').length >= 4, null, { timeout: 30_000 });
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'the dark theme is remembered');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.click('#themebtn');
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'light', 'and toggles back to light');
  await page.evaluate(() => { localStorage.removeItem('seed.settings'); });
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll('#model option').length >= 4, null, { timeout: 30_000 });
  check(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'with no choice stored, the theme follows prefers-color-scheme');
  await page.emulateMedia({ colorScheme: 'light' });

  // The Chinese edition: its face and every word of the interface in Chinese.
  await page.selectOption('#model', 'doubao');
  await page.click('#new');
  f = await faceOf();
  check(f.brand === '豆包' && f.greeting === '你好，我是豆包。今天想聊点什么？' && f.lang === 'zh-CN' && f.ph === '发消息给豆包' && f.accent === '#1664ff' && f.on === '#fff',
    `doubao's name, greeting, accent and Chinese interface (${JSON.stringify(f)})`);
  await strings('Chinese');
  await axe('empty chat, desktop, light, Chinese');
  await page.click('#sugg button >> nth=0');
  await page.waitForSelector(idle, { state: 'attached', timeout: 120_000 });
  await page.waitForFunction(() => document.querySelectorAll('.meta .stats').length === 1, null, { timeout: 30_000 });
  check(bodies[bodies.length - 1].model === 'doubao' && /^提示 \d+ \+ 回答 \d+ 个词元 · 每秒 [\d.]+ 个$/.test(await page.textContent('.meta .stats')), 'doubao answers; the figures are in Chinese');
  check(await page.evaluate(() => [...document.querySelectorAll('.who b')].map(b => b.textContent).join()) === '你,豆包', 'the authors are named in Chinese');
  await strings('Chinese');
  await axe('a chat with an answer, desktop, light, Chinese');
  await page.screenshot({ path: join(shots, 'web-zh.png') });
  await page.click('#themebtn');
  await axe('a chat with an answer, desktop, dark, Chinese');
  await page.focus('#setbtn');
  await page.keyboard.press('Enter');
  await axe('settings dialog, dark, Chinese');
  await strings('Chinese');
  await page.selectOption('#s-lang', 'en');
  check(await page.evaluate(() => document.documentElement.lang) === 'en' && (await page.textContent('#settitle')) === 'Settings', 'the user overrides the edition\'s language');
  await strings('English');
  await page.selectOption('#s-lang', 'auto');
  check((await page.textContent('#settitle')) === '设置', 'and returns to the edition\'s language');
  await page.keyboard.press('Escape');
  await page.click('#themebtn');

  // Keyboard only: Tab reaches every control of the page, each with a visible focus ring.
  await page.selectOption('#model', 'cici');
  await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
  const reached = new Set(), unringed = [];
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press('Tab');
    const r = await page.evaluate(() => { const e = document.activeElement; const s = getComputedStyle(e.closest('.box') || e);
      return { id: e.id || e.className || e.tagName, ring: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 }; });
    if (r.id === 'BODY') continue;
    reached.add(r.id); if (!r.ring) unringed.push(r.id);
  }
  const want = ['skip', 'new', 'search', 'open', 'icon', 'toggle', 'model', 'toolsbtn', 'themebtn', 'setbtn', 'in', 'send'].filter(x => x !== 'toggle');
  check(want.every(w => [...reached].some(r => r === w || String(r).split(' ').includes(w))), `Tab reaches every control (${[...reached].join(', ')})`);
  check(unringed.length === 0, `every focused control shows a focus ring ${unringed.join(', ')}`);

  // Phone: the sidebar is a drawer behind a toggle.
  await page.setViewportSize({ width: 360, height: 740 });
  check(!(await page.isVisible('#side')) && await page.isVisible('#toggle'), 'phone layout: the sidebar is hidden behind a toggle');
  await axe('phone, drawer closed, light, English');
  await page.click('#toggle');
  check(await page.isVisible('#side') && await page.evaluate(() => document.activeElement.id) === 'new' && (await page.getAttribute('#toggle', 'aria-expanded')) === 'true', 'the toggle opens the drawer and moves focus into it');
  await axe('phone, drawer open, light, English');
  await page.screenshot({ path: join(shots, 'web-phone-drawer.png'), animations: 'disabled' });
  await page.keyboard.press('Escape');
  check(!(await page.isVisible('#side')), 'Esc closes the drawer');
  await page.setViewportSize({ width: 1280, height: 820 });

  // A 10,000-token answer streaming in at about 2,000 tokens/s (a stream this test feeds to
  // the page's own fetch: no model here writes 10,000 tokens in a test's time), in markdown
  // with paragraphs, lists and code: the longest main-thread task and layouts per frame.
  await page.click('#new');
  const perf = await page.evaluate(async () => {
    const N = 10_000;
    const real = window.fetch;
    const piece = i => {
      const k = i % 600;
      if (k === 0) return '\n\nHere is a paragraph';
      if (k === 300) return '\n\n```rust\nfn main() {';
      if (k > 300 && k < 360) return k % 6 === 0 ? '\n    let x = ' + k + ';' : ' x += 1;';
      if (k === 360) return '\n}\n```\n\n- item';
      if (k > 360 && k < 400 && k % 8 === 0) return '\n- item';
      return [' with', ' **bold**', ' words', ' and', ' `code`', ' in', ' it', '.'][k % 8];
    };
    window.fetch = (url, opts) => {
      if (!String(url).endsWith('/v1/chat/completions')) return real(url, opts);
      window.fetch = real;
      const enc = new TextEncoder(); let i = 0;
      const stream = new ReadableStream({ pull(c) { return new Promise(res => setTimeout(() => {
        let chunk = '';
        for (let k = 0; k < 10 && i < N; k++, i++) chunk += 'data: ' + JSON.stringify({ choices: [{ index: 0, delta: { content: piece(i) } }] }) + '\n\n';
        c.enqueue(enc.encode(chunk));
        if (i >= N) { c.enqueue(enc.encode(`data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":${N},"total_tokens":${N + 9}}}\n\ndata: [DONE]\n\n`)); c.close(); }
        res();
      }, 5)); } });
      return Promise.resolve(new Response(stream, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    };
    const t0 = performance.now();
    const long = [], where = []; const obs = new PerformanceObserver(l => { for (const e of l.getEntries()) {
      long.push(e.duration); where.push(`${Math.round(e.startTime - t0)}ms+${Math.round(e.duration)} ${e.name} ${(e.attribution || []).map(a => a.containerType + ':' + a.containerName).join()}`); } });
    obs.observe({ type: 'longtask' });
    // Where a long frame went (Chromium's long-animation-frame entries): scripts, then style and layout.
    const loaf = []; const lobs = new PerformanceObserver(l => { for (const e of l.getEntries()) if (e.duration > 50) loaf.push({ d: Math.round(e.duration),
      render: Math.round(e.renderStart ? e.startTime + e.duration - e.renderStart : 0), layout: Math.round(e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0),
      scripts: e.scripts.map(x => `${x.invoker || x.sourceFunctionName}:${Math.round(x.duration)}`).join(' ') }); });
    lobs.observe({ type: 'long-animation-frame' });
    let frames = 0, counting = true; const count = () => { frames++; if (counting) requestAnimationFrame(count); }; requestAnimationFrame(count);
    window.__frames.max = 0;
    send('Write a very long answer.');
    while (ctrl) await new Promise(r => setTimeout(r, 50));
    await new Promise(r => setTimeout(r, 200));
    counting = false; obs.disconnect(); lobs.disconnect();
    const a = document.querySelectorAll('.assistant'); const text = a[a.length - 1].textContent;
    return { where: where.slice(0, 12), loaf: loaf.slice(0, 12), ms: performance.now() - t0, frames, long, maxFrame: window.__frames.max, blocks: a[a.length - 1].querySelectorAll('p,pre,ul').length, chars: text.length };
  });
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable');
  const longest = Math.max(perf.maxFrame, ...perf.long);
  console.log(`10,000-token answer: ${(perf.ms / 1000).toFixed(1)} s, ${perf.frames} frames, longest rAF callback ${perf.maxFrame.toFixed(1)} ms, long tasks (> 50 ms): ${perf.long.length ? perf.long.map(x => x.toFixed(0)).join(', ') : 'none'}; ${perf.blocks} blocks, ${perf.chars} characters`);
  if (perf.loaf.length || perf.where.length) console.log('long frames: ' + JSON.stringify(perf.loaf) + '; long tasks: ' + JSON.stringify(perf.where));
  check(perf.blocks > 40 && perf.chars > 30_000, 'the whole answer is on the page');
  check(perf.long.length === 0 && longest <= 50, `no main-thread task over 50 ms while 10,000 tokens stream (longest frame callback ${perf.maxFrame.toFixed(1)} ms)`);
  // Layouts per frame, counted by Chromium itself over a shorter stream.
  const layouts = await page.evaluate(async () => {
    const real = window.fetch;
    window.fetch = (url, opts) => {
      if (!String(url).endsWith('/v1/chat/completions')) return real(url, opts);
      window.fetch = real;
      const enc = new TextEncoder(); let i = 0;
      const stream = new ReadableStream({ pull(c) { return new Promise(res => setTimeout(() => {
        c.enqueue(enc.encode('data: ' + JSON.stringify({ choices: [{ index: 0, delta: { content: i % 50 === 49 ? '\n\nword' : ' word' } }] }) + '\n\n'));
        if (++i >= 1500) { c.enqueue(enc.encode('data: [DONE]\n\n')); c.close(); }
        res();
      }, 2)); } });
      return Promise.resolve(new Response(stream, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    };
    return true;
  });
  const metric = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map(m => [m.name, m.value]));
  const m0 = await metric();
  const framesDuring = await page.evaluate(async () => {
    let frames = 0, counting = true; const count = () => { frames++; if (counting) requestAnimationFrame(count); }; requestAnimationFrame(count);
    send('Another long answer, please.');
    while (ctrl) await new Promise(r => setTimeout(r, 50));
    counting = false; return frames;
  });
  const m1 = await metric();
  const perFrame = (m1.LayoutCount - m0.LayoutCount) / framesDuring;
  console.log(`layouts while 1,500 tokens stream: ${m1.LayoutCount - m0.LayoutCount} in ${framesDuring} frames (${perFrame.toFixed(2)} per frame)`);
  check(layouts && perFrame <= 1.05, `no more than one layout per animation frame while tokens arrive (${perFrame.toFixed(2)})`);

  check(errors.length === 0, 'no script errors in the page ' + errors.join('; '));
  check(foreign.length === 0, 'no request to any other host ' + foreign.join(' '));
  console.log('browser checks passed');
}

main().then(() => 0, async e => {
  console.error(String(e && e.stack || e));
  // What the page showed when it failed: its error line, its log's end, and a screenshot.
  if (page) {
    const seen = await page.evaluate(() => ({ err: document.querySelector('#err').textContent, log: document.querySelector('#log').textContent.slice(-400) })).catch(() => null);
    console.error('page at the failure: ' + JSON.stringify(seen));
    await page.screenshot({ path: join(shots, 'web-failure.png') }).catch(() => {});
  }
  return 1;
}).then(async code => {
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
});
