// Which errors mean "the store cannot be written" (read-only or full disk, SQLite refusing a write), as opposed to bugs.

const DISK_ERRORS = new Set(['EROFS', 'ENOSPC', 'EDQUOT', 'EACCES', 'EPERM']);

/** Is this error the file system refusing a write (as opposed to a bug or an upstream failure)? */
export function isDiskError(e: unknown): boolean {
  return DISK_ERRORS.has((e as NodeJS.ErrnoException)?.code ?? '');
}

/** A disk error, or SQLite unable to write. */
export function isStoreWriteError(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? '';
  return isDiskError(e) || /^SQLITE_(READONLY|FULL|IOERR|CANTOPEN|BUSY|LOCKED|PERM)/.test(code);
}
