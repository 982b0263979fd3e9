import pino, { type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * One logger for the process: JSON lines when stdout is not a terminal (journald,
 * files, the tests parse them), pino-pretty on a TTY so a person can read them.
 */
export function createLogger(level: LevelWithSilent = 'info', pretty = process.stdout.isTTY === true): Logger {
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that drops everything, for library use in tests that do not read logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
