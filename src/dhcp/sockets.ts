/**
 * The proxy's two socket adapters behind one ProxySocket: the native socket
 * (src/native/udp.ts: no per-datagram allocation, a synchronous sendto, and the
 * arrival interface of every datagram through IP_PKTINFO) when the addon is built,
 * node:dgram otherwise (then neither the arrival interface nor the outgoing one is
 * known: see the header of proxy.ts).
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIPv4 } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { Logger } from 'pino';
import { NativeUdpSocket, type UdpIo } from '../native/udp.js';

export type ProxyPort = 'dhcp' | 'pxe';

/**
 * Where a datagram came from: dgram's rinfo, or the native socket's source, which also
 * knows the index of the interface it arrived on (IP_PKTINFO).
 */
export type Source = { address: string; port: number; ifindex?: number };

/** A bound proxy socket. */
export interface ProxySocket {
  readonly port: number;
  /**
   * Errors arrive through onError, possibly after send() returned. `ifindex` (native
   * only, 0 = let the routes decide) sends out of that interface.
   */
  send(data: Buffer, port: number, address: string, ifindex: number, onError: (err: NodeJS.ErrnoException) => void): void;
  close(): Promise<void>;
}

/** Called for every datagram received; must not throw. */
export type OnDatagram = (msg: Buffer, source: Source, kind: ProxyPort, sock: ProxySocket) => void;

/**
 * A boot storm (a rack powering on) delivers hundreds of DISCOVERs within
 * milliseconds; the default 208 KiB receive buffer holds only ~150-300 small
 * datagrams (skb truesize), and a cold JIT needs >100 µs per packet, so the kernel
 * drops most of a storm (measured: 75 % lost). Ask for 4 MiB; the kernel caps it at
 * net.core.rmem_max without error.
 */
export const DEFAULT_RECV_BUFFER = 4 * 1024 * 1024;

/**
 * dgram resolves every destination through dns.lookup, which for an IP literal
 * still defers the send by a process.nextTick (and runs the tick queue after each
 * datagram). The proxy only ever sends to literals, so answer those synchronously.
 */
const literalLookup: NonNullable<dgram.SocketOptions['lookup']> = (host, options, cb) => {
  if (isIPv4(host)) cb(null, host, 4);
  else dns.lookup(host, options, cb);
};

function errnoError(negErrno: number, to: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(negErrno);
  const err: NodeJS.ErrnoException = new Error(`send ${code} ${to}`);
  err.code = code;
  err.errno = negErrno;
  return err;
}

export interface OpenOptions {
  io: UdpIo;
  port: number;
  address: string;
  kind: ProxyPort;
  recvBufferSize: number;
  onDatagram: OnDatagram;
  /** runtime socket errors are logged here, never thrown */
  log: Logger;
}

export function openProxySocket(o: OpenOptions): Promise<ProxySocket> {
  if (o.io === 'native') return Promise.resolve(openNative(o));
  return openDgram(o);
}

function openNative({ port, address, kind, recvBufferSize, onDatagram }: OpenOptions): ProxySocket {
  const s = new NativeUdpSocket({ family: 'udp4', broadcast: true, pktinfo: true, recvBufferSize, maxDatagram: 65536 });
  let bound: number;
  try {
    bound = s.bind(port, address);
  } catch (err) {
    s.close();
    throw new Error(`proxyDHCP cannot bind ${address}:${port} (${kind}): ${(err as Error).message}`, { cause: err });
  }
  const ps: ProxySocket = {
    port: bound,
    send: (data, toPort, toAddress, ifindex, onError) => {
      const r = s.sendTo(data, toPort, toAddress, 0, data.length, ifindex);
      if (r < 0) onError(errnoError(r, `${toAddress}:${toPort}`));
    },
    close: async () => s.close(),
  };
  // The receive buffer is reused for the next datagram and decode() keeps views
  // into it (the boot-event sink may hold them), so each request gets its own copy
  // (a pooled small allocation, not dgram's 64 KiB one).
  s.start((buf, len) => {
    const msg = Buffer.allocUnsafe(len);
    buf.copy(msg, 0, 0, len);
    onDatagram(msg, s.source, kind, ps);
  }, true);
  return ps;
}

function openDgram({ port, address, kind, recvBufferSize, onDatagram, log }: OpenOptions): Promise<ProxySocket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize, lookup: literalLookup });
    const onError = (err: Error): void => {
      s.close();
      reject(new Error(`proxyDHCP cannot bind ${address}:${port} (${kind}): ${err.message}`));
    };
    s.once('error', onError);
    s.bind(port, address, () => {
      s.off('error', onError);
      // Runtime socket errors must never crash the process: log and carry on.
      s.on('error', (err) => log.error({ err, kind }, 'socket error'));
      try {
        s.setBroadcast(true);
      } catch (err) {
        log.error({ err }, 'cannot enable SO_BROADCAST');
      }
      const ps: ProxySocket = {
        port: s.address().port,
        send: (data, toPort, toAddress, _ifindex, onSendError) =>
          s.send(data, toPort, toAddress, (err) => {
            if (err) onSendError(err);
          }),
        close: () => new Promise<void>((res) => s.close(() => res())),
      };
      s.on('message', (msg, rinfo) => onDatagram(msg, rinfo, kind, ps));
      resolve(ps);
    });
  });
}
