/**
 * The root of berth's own errors. Every error a user can see has a stable
 * `code` (listed in docs/errors.md) so scripts and docs can refer to it.
 */
export class BerthError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BerthError';
    this.code = code;
  }
}

/** True for errors berth raised on purpose: their message is fit to show as is, without a stack trace. */
export function isBerthError(err: unknown): err is BerthError {
  return err instanceof BerthError;
}
