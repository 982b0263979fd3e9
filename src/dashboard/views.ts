/**
 * The dashboard's pages, rendered on the server (no front-end build, no CDN): machines,
 * catalog, hosts, server. Live updates arrive as server-sent events that carry rendered
 * rows, so every piece of markup is produced here, once.
 */
import { html, Html } from './html.js';
import type { Machine, Step } from './machines.js';

export interface HostView {
  mac: string;
  hostname: string;
  entry: string;
  version?: string | undefined;
  arch?: string | undefined;
  allow: boolean;
  installOnce: boolean;
  /** install-once state: installed (boots locally) or pending */
  installed: boolean;
}

export interface CatalogView {
  id: string;
  label: string;
  version: string;
  arch: string;
  state: string;
  trust: string;
  lastSuccess?: string | undefined;
  lastError?: string | undefined;
}

export interface ServerView {
  ports: Array<{ service: string; port: number | string; state: string }>;
  io: string;
  allow: string[];
  stats: Record<string, Record<string, number | Record<string, number>>>;
  rates: Record<string, number>;
}

const FIRMWARE: Record<string, string> = {
  bios: 'BIOS',
  'efi-x64': 'UEFI x64',
  'efi-ia32': 'UEFI ia32',
  'efi-arm64': 'ARM64 UEFI',
  'efi-x64-http': 'UEFI x64 HTTP',
  'efi-arm64-http': 'ARM64 HTTP',
};

const STAGE: Record<Machine['stage'], string> = {
  dhcp: 'DHCP answered',
  bootfile: 'boot file fetched',
  config: 'config picked',
  kernel: 'kernel loaded',
  answer: 'answer file fetched',
  done: 'install reported done',
  failed: 'failed',
};

const CSS = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--mute:#59636e;--line:#d1d9e0;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--accent:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;--line:#30363d;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--accent:#4493f8}}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center;padding:.6rem 1rem;border-bottom:1px solid var(--line)}
header b{font-size:1.1rem}nav a{margin-right:.8rem;color:var(--accent);text-decoration:none}nav a[aria-current]{font-weight:700;text-decoration:underline}
main{padding:1rem;max-width:80rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--mute);font-weight:600}code,.mono{font-family:ui-monospace,monospace;font-size:.92em}.mute{color:var(--mute)}
.st-failed{color:var(--bad);font-weight:600}.st-kernel,.st-answer,.st-done{color:var(--ok);font-weight:600}.bad{color:var(--bad)}.warn{color:var(--warn)}
ol.tl{margin:.3rem 0;padding-left:1.2rem}ol.tl li{margin:.1rem 0}button{font:inherit;padding:.2rem .6rem;border:1px solid var(--line);border-radius:4px;background:transparent;color:var(--fg);cursor:pointer}
form.inline{display:inline}input{font:inherit;padding:.2rem .4rem;border:1px solid var(--line);border-radius:4px;background:var(--bg);color:var(--fg)}
pre.log{max-height:16rem;overflow:auto;border:1px solid var(--line);padding:.5rem;white-space:pre-wrap}
@media (max-width:40rem){table,thead,tbody,tr,td{display:block}thead{display:none}tr{border-bottom:1px solid var(--line);padding:.4rem 0}td{border:0;padding:.1rem .2rem}td[data-label]::before{content:attr(data-label) ": ";color:var(--mute)}}
`;

export function layout(title: string, active: string, body: Html, opts: { script?: string; admin?: boolean } = {}): Html {
  const link = (href: string, label: string): Html =>
    html`<a href="${href}"${active === href ? html` aria-current="page"` : ''}>${label}</a>`;
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · pxe</title><style>${new Html(CSS)}</style></head><body>
<header><b>pxe</b><nav>${link('/', 'Machines')}${link('/catalog', 'Catalog')}${link('/hosts', 'Hosts')}${link('/server', 'Server')}</nav>
<span class="mute">${opts.admin ? 'admin' : 'read-only'}</span></header><main>${body}</main>
${opts.script ? new Html(`<script>${opts.script}</script>`) : ''}</body></html>`;
}

export const rowId = (mac: string): string => `m-${mac.replace(/:/g, '')}`;

function stepLine(s: Step): Html {
  const t = s.time.slice(11, 19);
  const size = s.bytes !== undefined ? ` ${(s.bytes / 1024 / 1024).toFixed(s.bytes < 1024 * 1024 ? 3 : 1)} MiB` : '';
  const dur = s.ms !== undefined ? ` in ${(s.ms / 1000).toFixed(2)} s` : '';
  const cls = s.kind === 'failed' ? 'bad' : s.kind === 'config-miss' ? 'mute' : '';
  return html`<li class="${cls}" data-kind="${s.kind}"><span class="mono">${t}</span> ${s.proto.toUpperCase()} ${s.text}${size}${dur}</li>`;
}

export function machineRow(m: Machine, host: HostView | undefined): Html {
  const fw = m.firmware ? (FIRMWARE[m.firmware] ?? m.firmware) + (m.ipxe ? ' + iPXE' : '') : '?';
  const entry = host
    ? html`${host.entry}${host.version ? html` <span class="mute">${host.version}</span>` : ''}`
    : html`<span class="mute">menu (not in hosts)</span>`;
  const install = host?.installOnce ? (host.installed ? 'installed' : 'install pending') : '';
  return html`<tr id="${rowId(m.mac)}" data-stage="${m.stage}">
<td data-label="MAC" class="mono">${m.mac}${m.ip ? html`<br><span class="mute">${m.ip}</span>` : ''}</td>
<td data-label="Firmware">${fw}</td><td data-label="Boots">${entry}</td><td data-label="Install">${install}</td>
<td data-label="Stage" class="st-${m.stage} stage">${STAGE[m.stage]}${m.failure ? html`<br><span class="bad reason">${m.failure}</span>` : ''}</td>
<td data-label="Last seen" class="mono">${m.lastSeen.replace('T', ' ').slice(0, 19)}</td>
<td data-label="Timeline"><details><summary>${m.steps.length} steps</summary><ol class="tl">${m.steps.map(stepLine)}</ol></details></td></tr>`;
}

const LIVE_MACHINES = `
const tb=document.getElementById('machines');const n=document.getElementById('count');
const es=new EventSource('/dashboard/live?topic=machines');
es.addEventListener('machine',e=>{const d=JSON.parse(e.data);const t=document.createElement('tbody');t.innerHTML=d.html;const row=t.firstElementChild;
const old=document.getElementById(d.id);if(old){if(old.querySelector('details')?.open)row.querySelector('details').open=true;old.remove();}else if(n){n.textContent=String(Number(n.textContent)+1);}
tb.prepend(row);document.getElementById('empty')?.remove();});
es.addEventListener('reload',()=>location.reload());`;

export function machinesPage(machines: Machine[], total: number, hostOf: (mac: string) => HostView | undefined, admin: boolean): Html {
  const body = html`<h1>Machines</h1><p class="mute"><span id="count">${total}</span> seen${total > machines.length ? html`, newest ${machines.length} shown` : ''}; updates live.</p>
<table><thead><tr><th>MAC</th><th>Firmware</th><th>Boots</th><th>Install</th><th>Stage</th><th>Last seen</th><th>Timeline</th></tr></thead>
<tbody id="machines">${machines.length ? machines.map((m) => machineRow(m, hostOf(m.mac))) : html`<tr id="empty"><td colspan="7" class="mute">no machine has asked yet</td></tr>`}</tbody></table>`;
  return layout('Machines', '/', body, { script: LIVE_MACHINES, admin });
}

const LIVE_SYNC = `
const log=document.getElementById('synclog');const es=new EventSource('/dashboard/live?topic=sync');
es.addEventListener('sync',e=>{const d=JSON.parse(e.data);log.hidden=false;log.textContent+=d.line+'\\n';log.scrollTop=log.scrollHeight;if(d.done)setTimeout(()=>location.reload(),800);});
for(const f of document.querySelectorAll('form.sync'))f.addEventListener('submit',async ev=>{ev.preventDefault();
const r=await fetch(f.action,{method:'POST',headers:{accept:'application/json'},body:new URLSearchParams(new FormData(f))});
if(!r.ok){log.hidden=false;log.textContent+=await r.text();}});`;

export function catalogPage(rows: CatalogView[], admin: boolean, csrf: string): Html {
  const body = html`<h1>Catalog</h1><pre id="synclog" class="log" hidden></pre>
<table><thead><tr><th>Entry</th><th>Version</th><th>Arch</th><th>State</th><th>Trust</th><th>Synced</th><th></th></tr></thead><tbody>
${rows.map(
  (
    r,
  ) => html`<tr data-entry="${r.id}"><td data-label="Entry"><b>${r.id}</b><br><span class="mute">${r.label}</span></td><td data-label="Version">${r.version}</td><td data-label="Arch">${r.arch}</td>
<td data-label="State" class="${r.state.startsWith('failed') ? 'bad' : r.state === 'synced' ? '' : 'warn'} state">${r.state}${r.lastError ? html`<br><span class="mute">${r.lastError}</span>` : ''}</td>
<td data-label="Trust">${r.trust}</td><td data-label="Synced" class="mono">${r.lastSuccess?.replace('T', ' ').slice(0, 19) ?? ''}</td>
<td><form class="inline sync" method="post" action="/dashboard/actions/sync/${r.id}"><input type="hidden" name="csrf" value="${csrf}"><button ${admin ? '' : 'disabled'} title="pxe sync --only ${r.id}">sync</button></form></td></tr>`,
)}</tbody></table>`;
  return layout('Catalog', '/catalog', body, { script: LIVE_SYNC, admin });
}

export function hostsPage(hosts: HostView[], admin: boolean, csrf: string, file: string, editable: boolean): Html {
  const act = (mac: string, action: string, label: string): Html =>
    html`<form class="inline" method="post" action="/dashboard/actions/hosts/${mac}/${action}"><input type="hidden" name="csrf" value="${csrf}"><button ${admin ? '' : 'disabled'}>${label}</button></form>`;
  const body = html`<h1>Hosts</h1><p class="mute">${file}${editable ? '' : ' (no host commands available: read-only)'}</p>
<table><thead><tr><th>MAC</th><th>Hostname</th><th>Entry</th><th>Arch</th><th>Install</th><th></th></tr></thead><tbody>
${hosts.map(
  (
    h,
  ) => html`<tr data-mac="${h.mac}"><td data-label="MAC" class="mono">${h.mac}${h.allow ? '' : html` <span class="bad">denied</span>`}</td><td data-label="Hostname">${h.hostname}</td>
<td data-label="Entry">${h.entry}${h.version ? ` ${h.version}` : ''}</td><td data-label="Arch">${h.arch ?? 'from firmware'}</td>
<td data-label="Install" class="install">${h.installOnce ? (h.installed ? 'installed (boots locally)' : 'install pending') : 'every boot'}</td>
<td>${editable ? [act(h.mac, 'reinstall', 'reinstall'), act(h.mac, 'localboot', 'local boot'), act(h.mac, 'remove', 'remove')] : ''}</td></tr>`,
)}</tbody></table>${admin ? '' : loginForm(csrf)}`;
  return layout('Hosts', '/hosts', body, { admin });
}

export function loginForm(csrf: string): Html {
  return html`<h2>Admin</h2><form method="post" action="/dashboard/login"><input type="hidden" name="csrf" value="${csrf}"><label>token <input type="password" name="token" autocomplete="current-password"></label> <button>sign in</button></form>`;
}

const LIVE_SERVER = `
const es=new EventSource('/dashboard/live?topic=server');
es.addEventListener('server',e=>{const d=JSON.parse(e.data);for(const [k,v] of Object.entries(d.values)){const el=document.getElementById('v-'+k);if(el)el.textContent=String(v);}});`;

export function flatStats(v: ServerView): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [sub, stats] of Object.entries(v.stats)) {
    for (const [k, val] of Object.entries(stats)) {
      if (typeof val === 'number') out[`${sub}-${k}`] = val;
      else for (const [r, n] of Object.entries(val)) out[`${sub}-${k}-${r}`] = n;
    }
  }
  for (const [k, n] of Object.entries(v.rates)) out[`rate-${k}`] = Math.round(n * 10) / 10;
  return out;
}

export function serverPage(v: ServerView, admin: boolean): Html {
  const values = flatStats(v);
  const body = html`<h1>Server</h1>
<table><thead><tr><th>Service</th><th>Port</th><th>State</th></tr></thead><tbody>${v.ports.map((p) => html`<tr><td>${p.service}</td><td>${p.port}</td><td>${p.state}</td></tr>`)}</tbody></table>
<p>Datagram I/O: <b>${v.io}</b>. Allowed clients: ${v.allow.length ? v.allow.join(', ') : 'everyone (allow: [])'}</p>
<h2>Counters</h2><table><tbody>${Object.entries(values).map(([k, n]) => html`<tr><td class="mono">${k.replace(/-/g, ' ')}</td><td id="v-${k}" class="mono">${n}</td></tr>`)}</tbody></table>`;
  return layout('Server', '/server', body, { script: LIVE_SERVER, admin });
}
