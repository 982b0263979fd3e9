/**
 * A real `pxe serve` child process, for the fuzzer, the amplification bench and the
 * operations tests: started from the built CLI (dist/cli.js), optionally inside a
 * network namespace and/or under setpriv, with its JSON log lines collected so a
 * caller can wait for "pxe serving" or any other line (bounded waits only).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { DIST, REPO_ROOT } from '../repo.js';

export { REPO_ROOT };
export const CLI = join(DIST, 'cli.js');

export interface LogLine {
  level?: number;
  msg?: string;
  [k: string]: unknown;
}

export interface ServeChildOptions {
  /** arguments after `serve` */
  args: string[];
  /** run inside this network namespace (`ip netns exec`) */
  netns?: string;
  /** command prefix, e.g. setpriv … (goes after `ip netns exec NS`) */
  prefix?: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export class ServeChild {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;
  private waiters: Array<() => void> = [];

  constructor(opts: ServeChildOptions) {
    const cmd = [
      ...(opts.netns ? ['ip', 'netns', 'exec', opts.netns] : []),
      ...(opts.prefix ?? []),
      process.execPath,
      CLI,
      'serve',
      ...opts.args,
    ];
    const [file, ...rest] = cmd as [string, ...string[]];
    this.proc = spawn(file, rest, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env });
    let partial = '';
    this.proc.stdout?.on('data', (d: Buffer) => {
      const s = d.toString();
      this.stdout += s;
      partial += s;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) {
        if (!p.trim()) continue;
        try {
          this.lines.push(JSON.parse(p) as LogLine);
        } catch {
          this.lines.push({ msg: p });
        }
      }
      this.wake();
    });
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      this.wake();
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.wake();
        resolve();
      });
      this.proc.on('error', (err) => {
        this.stderr += String(err);
        this.exitCode = -1;
        this.wake();
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits (bounded) until `pred` holds; returns whether it did. */
  async until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  /** First log line matching, waiting up to timeoutMs; undefined if none. */
  async waitLine(pred: (l: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine | undefined> {
    let found: LogLine | undefined;
    await this.until(() => {
      found = this.lines.slice(from).find(pred);
      return found !== undefined || !this.running;
    }, timeoutMs);
    return found ?? this.lines.slice(from).find(pred);
  }

  /** Waits for "pxe serving"; throws with the child's output if it exits or times out first. */
  async ready(timeoutMs = 20_000): Promise<void> {
    const l = await this.waitLine((x) => x.msg === 'pxe serving', timeoutMs);
    if (!l)
      throw new Error(
        `pxe serve did not become ready (exit ${this.exitCode}/${this.exitSignal}):\nstderr: ${this.stderr}\nstdout: ${this.stdout.slice(-4000)}`,
      );
  }

  /** Resolves when the process exited, or after timeoutMs (returns whether it exited). */
  async waitExit(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running && this.proc.pid) process.kill(this.proc.pid, sig);
  }

  /** SIGTERM, then SIGKILL after graceMs. Never throws. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    try {
      this.signal('SIGTERM');
    } catch {
      /* gone */
    }
    if (await this.waitExit(graceMs)) return;
    try {
      this.proc.kill('SIGKILL');
    } catch {
      /* gone */
    }
    await this.waitExit(3_000);
  }
}
