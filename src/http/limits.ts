import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';

/**
 * HTTP bounded like the UDP side. A client that asks for a file and stops reading
 * holds a socket and (while the file streams) the file's descriptor plus its buffers;
 * without bounds a few hundred such clients exhaust the process's descriptors and
 * TFTP/DHCP can no longer open files or sockets. So, on the server/socket level
 * (whatever route serves the bytes):
 *
 * - idle timeout: a socket with no progress either way (a client that stopped reading
 *   leaves the send buffer full, so nothing moves) is destroyed after `idleTimeoutMs`;
 * - request timeout: the request line and headers must arrive within `requestTimeoutMs`
 *   (slow-loris);
 * - connection caps: in total and per client address; a connection over a cap is
 *   closed at once, counted, and logged at most once per 10 s;
 * - the total cap never exceeds the descriptor budget: half of what is left of
 *   RLIMIT_NOFILE after TFTP's worst case (two descriptors per transfer) and a
 *   reserve (each HTTP connection may hold two: the socket and the file it streams).
 */
export interface HttpLimits {
  maxConnections: number;
  maxConnectionsPerClient: number;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
}

/** Soft RLIMIT_NOFILE of this process (Linux /proc), undefined when unknown. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Descriptors kept out of HTTP's reach: listening sockets, logs, the state files, libuv. */
export const FD_RESERVE = 64;

/**
 * Descriptors one HTTP connection may hold: its socket and the file it serves, and on
 * the sendfile path one more (3 measured per stalled download; the stream path 2).
 */
export const FDS_PER_CONNECTION = 3;

/** The total HTTP connection cap that fits the descriptor budget. */
export function httpConnectionBudget(configured: number, nofile: number | undefined, tftpMaxTransfers: number): number {
  if (nofile === undefined) return configured;
  const left = nofile - 2 * tftpMaxTransfers - FD_RESERVE;
  return Math.max(16, Math.min(configured, Math.floor(left / FDS_PER_CONNECTION)));
}

const clientOf = (s: Socket): string => (s.remoteAddress ?? '?').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

export interface HttpLimitStats {
  connections: number;
  refusedTotalCap: number;
  refusedClientCap: number;
  timedOut: number;
}

export function boundHttpServer(server: Server, limits: HttpLimits, log: Logger): { stats: () => HttpLimitStats } {
  const st: HttpLimitStats = { connections: 0, refusedTotalCap: 0, refusedClientCap: 0, timedOut: 0 };
  const perClient = new Map<string, number>();
  server.requestTimeout = limits.requestTimeoutMs;
  server.headersTimeout = Math.min(limits.requestTimeoutMs, 60_000);
  server.keepAliveTimeout = Math.min(5_000, limits.idleTimeoutMs);
  server.setTimeout(limits.idleTimeoutMs, (socket: Socket) => {
    st.timedOut++;
    socket.destroy();
  });

  let lastLog = 0;
  let unlogged = 0;
  const refused = (client: string, why: string) => {
    unlogged++;
    const now = Date.now();
    if (now - lastLog < 10_000) return;
    log.warn(
      { client, reason: why, refusedSinceLastLine: unlogged, connections: st.connections, ...limits },
      'http connection refused: over the connection cap',
    );
    lastLog = now;
    unlogged = 0;
  };

  server.on('connection', (socket: Socket) => {
    const client = clientOf(socket);
    const mine = perClient.get(client) ?? 0;
    if (st.connections >= limits.maxConnections) {
      st.refusedTotalCap++;
      refused(client, `${st.connections} connections open (http.maxConnections ${limits.maxConnections})`);
      socket.destroy();
      return;
    }
    if (mine >= limits.maxConnectionsPerClient) {
      st.refusedClientCap++;
      refused(client, `${mine} connections from this client (http.maxConnectionsPerClient ${limits.maxConnectionsPerClient})`);
      socket.destroy();
      return;
    }
    st.connections++;
    perClient.set(client, mine + 1);
    socket.once('close', () => {
      st.connections--;
      const n = (perClient.get(client) ?? 1) - 1;
      if (n <= 0) perClient.delete(client);
      else perClient.set(client, n);
    });
  });
  return { stats: () => ({ ...st }) };
}
