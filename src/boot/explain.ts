import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FIRMWARE_LABEL } from './firmware.js';
import type { LoadedApp } from './load.js';
import { pxelinuxLookupSequence, type LookupStep } from './pxelinux.js';
import type { DhcpBootDecision, Firmware } from './types.js';

/**
 * `pxe which`: what a client gets and why, computed by the code `pxe serve` runs (the
 * booter's dhcpBoot for the boot file, its virtualFile and the TFTP root for the
 * config lookup, a ClientMemory taught what the proxyDHCP would have learnt), without
 * a network. test/integration/boot-explain.test.ts checks it against a running server.
 */
export interface ExplainedClient {
  /** lower-case colon-separated */
  mac: string;
  ip?: string;
  uuid?: string;
  /** the firmware whose config lookup is replayed (the rendered menu differs for EFI); default bios */
  firmware?: Firmware;
}

/** The proxyDHCP's decision for one kind of client. */
export type ExplainedDhcp = { firmware: Firmware; ipxe: boolean } & DhcpBootDecision;

export interface WhichStep extends LookupStep {
  /** what TFTP would do for this request */
  result: 'virtual' | 'file' | 'missing';
  detail: string;
  /** size of what would be sent (virtual or static file) */
  bytes?: number;
}

export interface Explanation {
  mac: string;
  ip?: string;
  uuid?: string;
  /** the firmware the config lookup was replayed for */
  firmware: Firmware;
  /** the boot file the proxyDHCP offers, per firmware (and with iPXE, option 77) */
  dhcp: ExplainedDhcp[];
  /** pxelinux's config lookup, in order */
  steps: WhichStep[];
  /** the first step that would be served: the config pxelinux uses */
  served: WhichStep | undefined;
}

/** The PXE ROMs, and iPXE (option 77) on BIOS and x64 UEFI, which may get another file. */
const DHCP_CLIENTS: ReadonlyArray<[Firmware, boolean]> = [
  ['bios', false],
  ['bios', true],
  ['efi-x64', false],
  ['efi-x64', true],
  ['efi-ia32', false],
  ['efi-arm64', false],
];

/** Placeholder when pxe.yaml sets no serverAddress: the proxy derives it per interface. */
const DERIVED_ADDRESS = '(server address)';

/**
 * `app` must be a load of its own (cli: loadApp): its ClientMemory is taught this
 * client's firmware, as the proxyDHCP's answer would.
 */
export async function explainClient(app: LoadedApp, client: ExplainedClient): Promise<Explanation> {
  const serverAddress = app.config.serverAddress ?? DERIVED_ADDRESS;
  const dhcp = DHCP_CLIENTS.map(([firmware, ipxe]): ExplainedDhcp => {
    const decision = app.booter.dhcpBoot({
      mac: client.mac,
      arch: undefined,
      firmware,
      isIpxe: ipxe,
      vendorClass: 'PXEClient',
      uuid: client.uuid,
      sourceAddress: client.ip ?? '0.0.0.0',
      relayAddress: undefined,
      serverAddress,
    });
    return { firmware, ipxe, ...decision };
  });

  const firmware = client.firmware ?? 'bios';
  // what the proxyDHCP's answer teaches `pxe serve` (serve.ts onEvent)
  app.clients.noteDhcp(client.mac, firmware, app.config.serverAddress);
  const address = client.ip ?? '0.0.0.0';
  const steps: WhichStep[] = [];
  for (const step of pxelinuxLookupSequence(client)) {
    const virtual = await app.booter.virtualFile(step.path, { address, mac: client.mac });
    if (virtual) {
      steps.push({ ...step, result: 'virtual', detail: virtual.origin, bytes: virtual.content.length });
      continue;
    }
    const onDisk = join(app.config.tftp.root, step.path);
    const st = await stat(onDisk).catch(() => null);
    if (st?.isFile()) steps.push({ ...step, result: 'file', detail: `static file ${onDisk} (${st.size} bytes)`, bytes: st.size });
    else steps.push({ ...step, result: 'missing', detail: 'not found: pxelinux tries the next name' });
  }
  const out: Explanation = { mac: client.mac, firmware, dhcp, steps, served: steps.find((s) => s.result !== 'missing') };
  if (client.ip) out.ip = client.ip;
  if (client.uuid) out.uuid = client.uuid;
  return out;
}

/** The report `pxe which` prints. */
export function formatExplanation(e: Explanation): string {
  const out: string[] = [`client ${e.mac}${e.ip ? ` ip ${e.ip}` : ''}${e.uuid ? ` uuid ${e.uuid}` : ''}`, '', 'proxyDHCP boot file:'];
  for (const d of e.dhcp) {
    const label = `${FIRMWARE_LABEL[d.firmware]}${d.ipxe ? ' + iPXE' : ''}`;
    out.push(`  ${label.padEnd(35)} ${d.action === 'boot' ? d.bootFile : `(no answer: ${d.reason})`}`);
  }
  out.push('', `pxelinux config lookup (in order) for ${FIRMWARE_LABEL[e.firmware]}:`);
  for (const s of e.steps) {
    const mark = s === e.served ? '=>' : s.result === 'missing' ? '  ' : ' +';
    out.push(`${mark} ${s.path.padEnd(40)} ${s.result.padEnd(8)} ${s.detail}`);
  }
  out.push(
    '',
    e.served
      ? `served: ${e.served.path} (${e.served.kind}; ${e.served.detail})`
      : 'served: nothing: pxelinux would find no config and stop',
  );
  return `${out.join('\n')}\n`;
}
