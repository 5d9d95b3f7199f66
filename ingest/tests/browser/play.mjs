// Plays a live HLS stream with hls.js (CMCD on) in headless Chromium and
// prints what the player did as one JSON line.
//
//   node play.mjs <master.m3u8 URL> <CMCD session id> <seconds> <screenshot.png>
//
// Output: {"currentTime": s, "firstFrameMs": ms|null, "bitrates": [bps of
// each rendition switched to], "fatal": [hls.js fatal error details]}.
// The browser is Debian's (`CHROMIUM` overrides the path); the page has no
// origin of its own, so every request to the origin is cross-origin and
// exercises its CORS headers.
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const [url, sessionId, seconds, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node play.mjs <url> <session id> <seconds> <screenshot.png>');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  // Without the networking flags Chromium keeps calling home from a closed network.
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage({ viewport: { width: 640, height: 360 } });
  await page.setContent('<body style="margin:0;background:#000">'
    + '<video id="v" muted autoplay playsinline width="640" height="360"></video></body>');
  await page.addScriptTag({ path: require.resolve('hls.js/dist/hls.min.js') });
  const played = await page.evaluate(async ({ url, sessionId, seconds }) => {
    const video = document.getElementById('v');
    const hls = new Hls({ cmcd: { sessionId, contentId: 'livepulse-browser-test' } });
    const bitrates = [];
    const fatal = [];
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => bitrates.push(hls.levels[d.level].bitrate));
    hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) fatal.push(d.details); });
    hls.loadSource(url);
    hls.attachMedia(video);
    const started = performance.now();
    let firstFrameMs = null;
    while (performance.now() - started < seconds * 1000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if (firstFrameMs === null && video.currentTime > 0) firstFrameMs = performance.now() - started;
    }
    hls.stopLoad();
    return { currentTime: video.currentTime, firstFrameMs, bitrates, fatal };
  }, { url, sessionId, seconds: Number(seconds) });
  await page.screenshot({ path: screenshot });
  console.log(JSON.stringify(played));
} finally {
  await browser.close();
}
