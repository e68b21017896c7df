// Launches Debian's chromium (never a downloaded browser) with WebGL from
// SwiftShader, for the end-to-end tests and the measurements.
import { chromium } from 'playwright-core';
import { existsSync } from 'node:fs';

export function chromiumPath() {
  for (const p of [process.env.IOC_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (p && existsSync(p)) return p;
  }
  throw new Error('chromium not found: apt-get install chromium (deploy/setup.sh does)');
}

export async function launch(extra = []) {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
      '--ignore-gpu-blocklist', '--autoplay-policy=no-user-gesture-required', '--lang=vi-VN', ...extra],
  });
}
