/**
 * What `pxe doctor` reports: one finding per line, with its severity and the pxe.yaml
 * key or command that fixes it. "error" is anything that would stop a machine from
 * booting; the command exits non-zero when there is one.
 */
export type Severity = 'ok' | 'info' | 'warn' | 'error';

export interface Finding {
  severity: Severity;
  /** what was checked: "dhcp", "port", "firewall", "bootloader", "keyring", "mirror", "hosts" */
  check: string;
  message: string;
  /** the pxe.yaml key, command or site change that fixes it */
  fix?: string;
}

const ORDER: Record<Severity, number> = { error: 0, warn: 1, info: 2, ok: 3 };

export function sortFindings(findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => ORDER[a.severity] - ORDER[b.severity]);
}

export function formatFindings(findings: Finding[]): string {
  const lines = sortFindings(findings).map((f) => {
    const fix = f.fix ? ` (fix: ${f.fix})` : '';
    return `${f.severity.toUpperCase().padEnd(5)} ${f.check.padEnd(10)} ${f.message}${fix}`;
  });
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.filter((f) => f.severity === 'warn').length;
  lines.push('', errors === 0 && warnings === 0 ? 'no problems found' : `${errors} error(s), ${warnings} warning(s)`);
  return `${lines.join('\n')}\n`;
}

export function exitCodeOf(findings: Finding[]): number {
  return findings.some((f) => f.severity === 'error') ? 1 : 0;
}
