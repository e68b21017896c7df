// Builds the app into dist/ (committed, embedded by the Go package):
//   node build.mjs           write dist/ and report the bundle sizes
//   node build.mjs --check   build in memory and fail if dist/ differs
// The output depends only on the sources and the locked packages, so the
// check tells whether the committed bundle was built from the sources.
import * as esbuild from 'esbuild';
import { readFileSync, writeFileSync, mkdirSync, rmSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const check = process.argv.includes('--check');

const result = await esbuild.build({
  entryPoints: { app: join(here, 'src/main.js'), style: join(here, 'src/app.css') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome109', 'firefox115', 'safari16'],
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  outdir: join(dist, 'assets'),
  write: false,
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const files = new Map(); // path relative to dist -> Buffer
let js = '', css = '';
for (const f of result.outputFiles) {
  const rel = f.path.slice(dist.length + 1);
  files.set(rel, Buffer.from(f.contents));
  const base = rel.split('/').pop();
  if (base.endsWith('.js')) js = base;
  if (base.endsWith('.css')) css = base;
}
const index = readFileSync(join(here, 'index.html'), 'utf8').replace('{{js}}', js).replace('{{css}}', css);
files.set('index.html', Buffer.from(index));
files.set('assets/icon.svg', readFileSync(join(here, 'icon.svg')));

function listDist(dir, prefix = '') {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...listDist(join(dir, e.name), prefix + e.name + '/'));
    else out.push(prefix + e.name);
  }
  return out;
}

if (check) {
  const have = listDist(dist).filter((f) => f !== '.gitkeep');
  const bad = [];
  for (const [rel, buf] of files) {
    if (!have.includes(rel)) bad.push('missing ' + rel);
    else if (!readFileSync(join(dist, rel)).equals(buf)) bad.push('differs ' + rel);
  }
  for (const rel of have) if (!files.has(rel)) bad.push('extra ' + rel);
  if (bad.length) {
    console.error('dashboards/web/dist does not match the sources (run: cd dashboards/web && npm ci && npm run build):\n  ' + bad.join('\n  '));
    process.exit(1);
  }
  console.log('dashboards/web/dist matches the sources');
} else {
  rmSync(dist, { recursive: true, force: true });
  for (const [rel, buf] of files) {
    mkdirSync(dirname(join(dist, rel)), { recursive: true });
    writeFileSync(join(dist, rel), buf);
  }
  for (const [rel, buf] of files) {
    if (rel.endsWith('.js') || rel.endsWith('.css')) {
      console.log(`${rel}: ${(buf.length / 1024).toFixed(0)} KiB, ${(gzipSync(buf).length / 1024).toFixed(0)} KiB gzipped`);
    }
  }
}
