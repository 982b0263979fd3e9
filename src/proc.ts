import { spawn } from 'node:child_process';

export interface CommandResult {
  /** exit code; -1 when the command could not be started */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs a command with a hard deadline (the child is SIGKILLed by pid when it
 * expires) and collects its output. Never rejects: a missing binary is code -1 with
 * the reason in stderr. Used by the benchmarks, the fuzzer and the test helpers.
 */
export function runCommand(
  cmd: readonly string[],
  opts: { timeoutMs?: number; input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const [file, ...args] = cmd;
    if (!file) {
      resolve({ code: -1, signal: null, stdout: '', stderr: 'empty command', timedOut: false });
      return;
    }
    const p = spawn(file, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      ...(opts.env ? { env: opts.env } : {}),
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) p.stdin?.end(opts.input);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const t = setTimeout(() => {
      timedOut = true;
      stderr += `\n[timeout after ${timeoutMs} ms]`;
      p.kill('SIGKILL');
    }, timeoutMs);
    p.on('error', (e) => {
      clearTimeout(t);
      resolve({ code: -1, signal: null, stdout, stderr: `${stderr}${e.message}`, timedOut });
    });
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
