// The pino logger: JSON lines, secrets redacted wherever they appear.
import { pino, type Logger } from 'pino';

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'stevedore' },
      redact: {
        paths: [
          'password',
          'token',
          'authorization',
          '*.password',
          '*.token',
          '*.authorization',
          'headers.authorization',
          '*.credentials',
          'credentials',
          'upstreams.*.credentials',
          'upstreams.*.endpoints[*].credentials',
          'endpoints[*].credentials',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
