/**
 * Network-namespace lab for integration tests and benchmarks (needs root and iproute2).
 *
 *   const lab = new NetnsLab('dhcp');            // names start with pxe-<pid>-dhcp-
 *   const srv = await lab.netns('srv');          // pxe-<pid>-dhcp-srv, lo up
 *   const cli = await lab.netns('cli');
 *   await lab.veth(srv, 's0', '10.66.0.1/24', cli, 'c0', '10.66.0.2/24');
 *   const br = await lab.bridge(srv, 'br0', '10.66.1.1/24');  // optional bridge
 *   await lab.veth(cli, 'c1', '10.66.1.2/24', srv, 'p1');     // peer p1 without address...
 *   await lab.attach(srv, 'p1', 'br0');                       // ...enslaved to the bridge
 *   const p = lab.spawn(srv, ['node', 'dist/dhcp/standalone.js']);  // tracked child
 *   await lab.waitForUdpPort(srv, 67, 10_000);
 *   const r = await lab.exec(cli, ['ip', 'addr'], 5_000);     // {code, stdout, stderr}
 *   await lab.cleanup();                                      // in afterAll / finally
 *
 * Rules it enforces (shared test host): unique names per process, veths created
 * directly inside the namespaces (nothing in the root namespace), every wait bounded,
 * cleanup kills only the processes it started or that live in its own namespaces,
 * then deletes its namespaces; cleanup never throws.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { runCommand } from '../../src/proc.js';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command (not in a namespace) with a hard timeout; never rejects. */
export function run(cmd: string[], timeoutMs = 10_000, input?: string): Promise<ExecResult> {
  return runCommand(cmd, { timeoutMs, ...(input === undefined ? {} : { input }) });
}

/** Run and reject on non-zero exit (for setup steps). */
export async function mustRun(cmd: string[], timeoutMs = 10_000): Promise<string> {
  const r = await run(cmd, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Poll `fn` until it returns a truthy value or the deadline passes (then throws `what`). */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class NetnsLab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];

  /** `tag` distinguishes labs of one process; names are pxe-<pid>-<tag>-<name>. */
  constructor(tag: string) {
    this.prefix = `pxe-${process.pid}-${tag}`;
  }

  /** Create a namespace with loopback up; returns its full name. */
  async netns(name: string): Promise<string> {
    const full = `${this.prefix}-${name}`;
    await mustRun(['ip', 'netns', 'add', full]);
    this.namespaces.push(full);
    await mustRun(['ip', '-n', full, 'link', 'set', 'lo', 'up']);
    return full;
  }

  /**
   * veth pair created directly inside the two namespaces (interface names <= 15
   * chars); addresses in CIDR form are optional (omit to enslave to a bridge).
   */
  async veth(nsA: string, ifA: string, addrA: string | null, nsB: string, ifB: string, addrB: string | null = null): Promise<void> {
    await mustRun(['ip', 'link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    for (const [ns, ifc, addr] of [
      [nsA, ifA, addrA],
      [nsB, ifB, addrB],
    ] as const) {
      if (addr) await mustRun(['ip', '-n', ns, 'addr', 'add', addr, 'dev', ifc]);
      await mustRun(['ip', '-n', ns, 'link', 'set', ifc, 'up']);
    }
  }

  /** A bridge inside `ns` (STP off, forward delay 0 so ports forward at once). */
  async bridge(ns: string, name: string, addr: string | null = null): Promise<void> {
    await mustRun(['ip', '-n', ns, 'link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    if (addr) await mustRun(['ip', '-n', ns, 'addr', 'add', addr, 'dev', name]);
    await mustRun(['ip', '-n', ns, 'link', 'set', name, 'up']);
  }

  async attach(ns: string, ifc: string, bridge: string): Promise<void> {
    await mustRun(['ip', '-n', ns, 'link', 'set', ifc, 'master', bridge]);
  }

  /** Run a command inside `ns` with a hard timeout; never rejects. */
  exec(ns: string, cmd: string[], timeoutMs = 10_000, input?: string): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', ns, ...cmd], timeoutMs, input);
  }

  /** Start a long-running process inside `ns`; it is killed by cleanup(). */
  spawn(ns: string, cmd: string[], opts: SpawnOptions = {}): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.push(p);
    return p;
  }

  /** Wait until something in `ns` listens on UDP `port` (bounded). */
  async waitForUdpPort(ns: string, port: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(
      async () => {
        const r = await this.exec(ns, ['ss', '-Hunl', `sport = :${port}`], 3_000);
        return r.code === 0 && r.stdout.trim().length > 0;
      },
      timeoutMs,
      `UDP port ${port} in ${ns}`,
    );
  }

  /** Stop a tracked child: SIGTERM, then SIGKILL after `graceMs`. Resolves when it exited. */
  async stop(p: ChildProcess, graceMs = 3_000): Promise<void> {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs + 2_000))]);
    clearTimeout(t);
  }

  /** Kill what we started and what lives in our namespaces, delete the namespaces. Never throws. */
  async cleanup(): Promise<void> {
    for (const p of this.children.splice(0)) {
      try {
        await this.stop(p, 2_000);
      } catch {
        /* already gone */
      }
    }
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        const r = await run(['ip', 'netns', 'pids', ns], 3_000);
        for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        await run(['ip', 'netns', 'del', ns], 5_000);
      } catch {
        /* best effort: never throw from cleanup */
      }
    }
  }
}
