// The system under test for the browser tests and the measurements: its
// own Mosquitto (deploy/mosquitto.conf on a free port), a fresh database,
// a real iocd (bin/iocd) and, on request, the simulator (bin/iocsim).
// Everything it starts it stops in close().
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync, mkdtempSync, createWriteStream } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..', '..');
export const screens = join(root, 'docs', 'screens');
export const shared = process.env.IOC_SHARED_DATA || join(root, '..', 'shared', 'data', 'hanoi');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
}

// Stack is one iocd with its broker and database. opts.env adds to
// iocd's environment; opts.name prefixes the database.
export class Stack {
  constructor(opts = {}) {
    this.opts = opts;
    this.work = mkdtempSync(join(tmpdir(), 'ioc-e2e-'));
    this.dbBase = process.env.IOC_TEST_DATABASE_URL || 'postgres://ioc:ioc@127.0.0.1:5432/postgres';
    this.dbName = (opts.name || 'ioc_e2e') + '_' + process.pid;
    this.dbURL = this.dbBase.replace(/\/[^/?]*(\?|$)/, '/' + this.dbName + '$1');
    this.adminPassword = 'Kho-bi-mat-2026-e2e';
    this.iocdBin = process.env.IOC_E2E_IOCD || join(root, 'bin', 'iocd');
    this.simBin = process.env.IOC_E2E_IOCSIM || join(root, 'bin', 'iocsim');
    this.logs = createWriteStream(join(this.work, 'iocd.log'));
    this.sims = [];
  }

  psql(sql, db = this.dbBase) {
    return execFileSync('psql', [db, '-qAtc', sql], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  }

  async start() {
    [this.mqttPort, this.httpPort] = [await freePort(), await freePort()];
    this.base = `http://127.0.0.1:${this.httpPort}`;
    const conf = readFileSync(join(root, 'deploy', 'mosquitto.conf'), 'utf8').replace(/^listener .*$/m, `listener ${this.mqttPort} 127.0.0.1`);
    writeFileSync(join(this.work, 'mosquitto.conf'), conf);
    this.mosq = spawn(process.env.IOC_MOSQUITTO || '/usr/sbin/mosquitto', ['-c', join(this.work, 'mosquitto.conf')], { stdio: 'ignore' });
    this.psql(`create database ${this.dbName}`);
    writeFileSync(join(this.work, 'admin-pw'), this.adminPassword + '\n', { mode: 0o600 });
    await sleep(300);
    this.startIocd();
    await this.waitHealthy();
    const login = await fetch(this.base + '/api/v1/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'admin', password: this.adminPassword }) });
    if (!login.ok) throw new Error('admin login: ' + login.status);
    this.adminToken = (await login.json()).token;
    return this;
  }

  startIocd() {
    this.iocd = spawn(this.iocdBin, ['serve'], {
      env: { ...process.env, IOC_DATABASE_URL: this.dbURL, IOC_MQTT_URL: `tcp://127.0.0.1:${this.mqttPort}`,
        IOC_AREAS_FILE: join(shared, 'wards.geojson'), IOC_CITY_FILE: join(shared, 'city.geojson'),
        IOC_HTTP_ADDR: `127.0.0.1:${this.httpPort}`, IOC_BOOTSTRAP_ADMIN_PASSWORD_FILE: join(this.work, 'admin-pw'),
        IOC_MQTT_CLIENT_ID: 'iocd-e2e-' + process.pid, IOC_RULES_FILE: join(root, 'deploy', 'rules.json'),
        IOC_METRICS_ADDR: '', IOC_DASHBOARD_ACK_TARGET: '30s', ...(this.opts.env || {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.iocd.stdout.pipe(this.logs, { end: false });
    this.iocd.stderr.pipe(this.logs, { end: false });
  }

  async waitHealthy() {
    for (let i = 0; i < 300; i++) {
      if (this.iocd.exitCode !== null) throw new Error('iocd exited with ' + this.iocd.exitCode + '; log in ' + this.work);
      try { const r = await fetch(this.base + '/readyz'); if (r.ok) return; } catch (e) { /* not yet */ }
      await sleep(200);
    }
    throw new Error('iocd did not become ready; log in ' + this.work);
  }

  async stopIocd() {
    if (!this.iocd || this.iocd.exitCode !== null) return;
    const done = new Promise((r) => this.iocd.once('exit', r));
    this.iocd.kill('SIGTERM');
    await done;
  }

  async api(method, path, body, token = this.adminToken, version) {
    const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token };
    if (version !== undefined) headers['If-Match'] = String(version);
    const r = await fetch(this.base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = text; }
    return { status: r.status, body: parsed };
  }

  // publishEmergency sends a call-centre emergency over MQTT, as a field
  // source would (CONTRACT §1).
  publishEmergency(id, lon, lat, type = 'fire') {
    const msg = JSON.stringify({ ts: new Date().toISOString(), lon, lat, type, priority: 1, channel: 'call_114', note: 'E2E ' + id, id: 'e2e-' + id });
    execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.mqttPort), '-q', '1', '-t', 'city/emergency/e2e-' + id, '-m', msg]);
  }

  // publishCamera sends a camera's video-analytics event with a snapshot
  // (an event no rule opens an incident on at this confidence).
  publishCamera(id, lon, lat, snapshotURL) {
    const msg = JSON.stringify({ ts: new Date().toISOString(), lon, lat, event: 'illegal_parking', confidence: 0.2, snapshot_url: snapshotURL, id: 'e2e-cam-' + Date.now() });
    execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.mqttPort), '-q', '1', '-t', 'city/camera/' + id, '-m', msg]);
  }

  // sim starts iocsim against the stack's broker with these flags.
  sim(args, stdio = 'ignore') {
    const p = spawn(this.simBin, ['--broker', `tcp://127.0.0.1:${this.mqttPort}`, '--wards', join(shared, 'wards.geojson'), ...args], { stdio });
    this.sims.push(p);
    return p;
  }

  async close() {
    for (const p of this.sims) if (p.exitCode === null) p.kill('SIGTERM');
    await this.stopIocd();
    if (this.mosq) this.mosq.kill('SIGTERM');
    await sleep(300);
    try { this.psql(`drop database if exists ${this.dbName} with (force)`); } catch (e) { console.log('drop database:', e.message); }
    if (!process.env.IOC_E2E_KEEP) execFileSync('rm', ['-rf', this.work]);
    else console.log('logs kept in', this.work);
  }
}
